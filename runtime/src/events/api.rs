//! Events of the operator API.

use super::Counters;

/// The operator API answered a request.
#[derive(Debug)]
pub struct ApiRequestServed {
    /// The HTTP status code of the answer.
    pub status: u16,
}

impl ApiRequestServed {
    /// Counts it (no log line: a scraper calls every few seconds).
    pub fn emit(self, counters: &Counters) {
        counters.add_api_request(self.status);
    }
}
