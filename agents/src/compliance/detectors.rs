//! Hand-written scanners for personal data in text: payment card numbers, e-mail
//! addresses, IBANs, US social security numbers and UK national insurance numbers.
//!
//! No regex engine: each scanner is one linear pass over the bytes (ASCII only; any other
//! byte ends a candidate), checks boundaries itself, and validates what it finds with the
//! format's own check (Luhn, mod 97, allocation rules), so plain numbers rarely match.
//! [`scan`] reports the kind and byte range of each match; callers report *where* data was
//! found, never the matched text.

use std::ops::Range;

/// A kind of personal data a detector finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PiiKind {
    /// A payment card number (PAN).
    CardNumber,
    /// An e-mail address.
    Email,
    /// An international bank account number.
    Iban,
    /// A US social security number.
    UsSsn,
    /// A UK national insurance number.
    UkNino,
}

impl PiiKind {
    /// Every kind, in settings order.
    pub const ALL: [PiiKind; 5] = [
        PiiKind::CardNumber,
        PiiKind::Email,
        PiiKind::Iban,
        PiiKind::UsSsn,
        PiiKind::UkNino,
    ];

    /// The name used in settings (`detectors`, `allow_fields`).
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::CardNumber => "card_number",
            PiiKind::Email => "email",
            PiiKind::Iban => "iban",
            PiiKind::UsSsn => "us_ssn",
            PiiKind::UkNino => "uk_nino",
        }
    }

    /// The kind by its settings name.
    pub fn from_name(name: &str) -> Option<PiiKind> {
        PiiKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Words for proposal reasons and alerts.
    pub fn describe(self) -> &'static str {
        match self {
            PiiKind::CardNumber => "card number",
            PiiKind::Email => "e-mail address",
            PiiKind::Iban => "IBAN",
            PiiKind::UsSsn => "US SSN",
            PiiKind::UkNino => "UK NINO",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`PiiKind`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KindSet(u8);

impl KindSet {
    /// No kind.
    pub const EMPTY: KindSet = KindSet(0);

    /// Every kind.
    pub fn all() -> KindSet {
        PiiKind::ALL.into_iter().fold(KindSet::EMPTY, KindSet::with)
    }

    /// This set plus `kind`.
    #[must_use]
    pub fn with(self, kind: PiiKind) -> KindSet {
        KindSet(self.0 | kind.bit())
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: PiiKind) -> bool {
        self.0 & kind.bit() != 0
    }
}

/// One match: what was found, and where in the scanned text (bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// What was found.
    pub kind: PiiKind,
    /// Its byte range in the text.
    pub span: Range<usize>,
}

/// Every match of the `kinds` detectors in `text`, ordered by kind, then position.
pub fn scan(text: &str, kinds: KindSet) -> Vec<Match> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let ibans = if kinds.contains(PiiKind::Iban) || kinds.contains(PiiKind::CardNumber) {
        ibans(b)
    } else {
        Vec::new()
    };
    if kinds.contains(PiiKind::CardNumber) {
        // An IBAN's digits may pass as a card number (Norway's 13-digit BBAN); the IBAN is
        // the better name for them.
        for span in cards(b) {
            if !ibans
                .iter()
                .any(|i| i.start < span.end && span.start < i.end)
            {
                out.push(Match {
                    kind: PiiKind::CardNumber,
                    span,
                });
            }
        }
    }
    if kinds.contains(PiiKind::Email) {
        out.extend(emails(b).into_iter().map(|span| Match {
            kind: PiiKind::Email,
            span,
        }));
    }
    if kinds.contains(PiiKind::Iban) {
        out.extend(ibans.into_iter().map(|span| Match {
            kind: PiiKind::Iban,
            span,
        }));
    }
    if kinds.contains(PiiKind::UsSsn) {
        out.extend(ssns(b).into_iter().map(|span| Match {
            kind: PiiKind::UsSsn,
            span,
        }));
    }
    if kinds.contains(PiiKind::UkNino) {
        out.extend(ninos(b).into_iter().map(|span| Match {
            kind: PiiKind::UkNino,
            span,
        }));
    }
    out
}

fn is_digit(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

fn is_alnum(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_alphanumeric)
}

// ---------------------------------------------------------------------------------------
// Payment card numbers

/// ISO/IEC 7812 PAN lengths.
const CARD_DIGITS: std::ops::RangeInclusive<usize> = 13..=19;

/// Card numbers: 13–19 digits, optionally in groups joined by single spaces or dashes,
/// passing Luhn, not all one digit, and starting with 2–9. (Major industry identifiers 0
/// and 1 are not issued to card networks; excluding them also keeps 13-digit epoch
/// milliseconds, which start with 1 until 2033, from passing as cards.)
///
/// Digits joined by single separators form a run. A match is a whole run, or failing that
/// the leftmost-longest stretch of whole groups of a run (so `4111 1111 1111 1111 12`,
/// a number followed by an expiry month, still matches), and never cuts a group: 20
/// contiguous digits do not contain a card.
fn cards(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut groups: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // Collect the run's groups of digits.
        groups.clear();
        let mut j = i;
        loop {
            let start = j;
            while is_digit(b, j) {
                j += 1;
            }
            groups.push(start..j);
            if matches!(b.get(j), Some(b' ' | b'-')) && is_digit(b, j + 1) {
                j += 1;
            } else {
                break;
            }
        }
        i = j;
        let mut a = 0;
        while a < groups.len() {
            let mut best: Option<usize> = None;
            let mut digits = 0;
            for (z, g) in groups.iter().enumerate().skip(a) {
                digits += g.len();
                if digits > *CARD_DIGITS.end() {
                    break;
                }
                if CARD_DIGITS.contains(&digits) && is_card(&b[groups[a].start..g.end]) {
                    best = Some(z);
                }
            }
            match best {
                Some(z) => {
                    out.push(groups[a].start..groups[z].end);
                    a = z + 1;
                }
                None => a += 1,
            }
        }
    }
    out
}

/// Luhn-valid, not all one digit, first digit 2–9; `s` holds digits and separators.
fn is_card(s: &[u8]) -> bool {
    let digits = || s.iter().filter(|c| c.is_ascii_digit()).map(|c| c - b'0');
    let Some(first) = digits().next() else {
        return false;
    };
    if first < 2 || digits().all(|d| d == first) {
        return false;
    }
    let sum: u32 = digits()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    // Written out rather than `is_multiple_of`, which is newer than the workspace's MSRV.
    let remainder = sum % 10;
    remainder == 0
}

// ---------------------------------------------------------------------------------------
// E-mail addresses

/// RFC 5322 `atext`, plus `.` between atoms.
fn is_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-.".contains(&c)
}

/// RFC 5321 limits: local part 64 octets, domain 253 (255 less the length bytes).
const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;

fn is_domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'.'
}

/// E-mail addresses around each `@`: a local part of at most 64 `atext` characters with
/// single inner dots, and a domain of at least two labels (letters, digits, inner
/// hyphens; at most 63 each, 253 in all) whose last label, the TLD, is two or more
/// letters. Dots and hyphens at either end are taken as punctuation around the address.
fn emails(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for at in b
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == b'@')
        .map(|(i, _)| i)
    {
        // Bounded walks keep a string full of `@` linear: a longer run of local-part
        // characters is not an address (at most 64, plus dots trimmed below).
        let mut start = at;
        while start > 0 && at - start <= MAX_LOCAL && is_local_char(b[start - 1]) {
            start -= 1;
        }
        while start < at && b[start] == b'.' {
            start += 1;
        }
        let local = &b[start..at];
        if local.is_empty()
            || local.len() > MAX_LOCAL
            || local.ends_with(b".")
            || local.windows(2).any(|w| w == b"..")
        {
            continue;
        }
        let mut end = at + 1;
        while end < b.len() && end - at <= MAX_DOMAIN + 1 && is_domain_char(b[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if is_domain(&b[at + 1..end]) {
            out.push(start..end);
        }
    }
    out
}

fn is_domain(d: &[u8]) -> bool {
    if d.len() > MAX_DOMAIN {
        return false;
    }
    let labels: Vec<&[u8]> = d.split(|c| *c == b'.').collect();
    let Some(tld) = labels.last() else {
        return false;
    };
    labels.len() >= 2
        && tld.len() >= 2
        && tld.iter().all(u8::is_ascii_alphabetic)
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with(b"-") && !l.ends_with(b"-"))
}

// ---------------------------------------------------------------------------------------
// IBANs

/// IBAN lengths per country, from the SWIFT IBAN registry, sorted by country code.
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

fn iban_length(country: &[u8]) -> Option<usize> {
    IBAN_LENGTHS
        .binary_search_by(|(c, _)| c.as_slice().cmp(country))
        .ok()
        .map(|i| IBAN_LENGTHS[i].1)
}

/// IBANs: an upper-case country code from [`IBAN_LENGTHS`], two check digits and the
/// BBAN, exactly the country's length, either compact or printed in groups of four joined
/// by single spaces, not inside a longer word, and passing mod 97 (ISO 13616).
fn ibans(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= b.len() {
        let found = (b[i].is_ascii_uppercase()
            && b[i + 1].is_ascii_uppercase()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric()))
        .then(|| iban_length(&b[i..i + 2]))
        .flatten()
        .and_then(|len| iban_at(b, i, len));
        match found {
            Some(end) => {
                out.push(i..end);
                i = end;
            }
            None => i += 1,
        }
    }
    out
}

/// The end of a valid IBAN of `len` characters starting at `start`, if there is one.
fn iban_at(b: &[u8], start: usize, len: usize) -> Option<usize> {
    let grouped = b.get(start + 4) == Some(&b' ');
    let mut chars = Vec::with_capacity(len);
    let mut j = start;
    while chars.len() < len {
        if grouped && chars.len() % 4 == 0 && !chars.is_empty() {
            if b.get(j) != Some(&b' ') {
                return None;
            }
            j += 1;
        }
        let c = *b.get(j).filter(|c| c.is_ascii_alphanumeric())?;
        chars.push(c.to_ascii_uppercase());
        j += 1;
    }
    if is_alnum(b, j) {
        return None;
    }
    let rearranged = chars[4..].iter().chain(&chars[..4]);
    let mut rem: u32 = 0;
    for c in rearranged {
        rem = if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A') + 10) % 97
        };
    }
    (rem == 1).then_some(j)
}

// ---------------------------------------------------------------------------------------
// US social security numbers

/// SSNs written `AAA-GG-SSSS`, not inside a longer number (digits or dash-joined digits on
/// either side), with the SSA's never-issued values excluded: area 000, 666 and 900–999,
/// group 00, serial 0000. Bare nine-digit numbers are not reported: too many plain
/// numbers look the same.
fn ssns(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let shape = b"ddd-dd-dddd";
    for i in 0..b.len().saturating_sub(shape.len() - 1) {
        let end = i + shape.len();
        let is_shape = shape.iter().zip(&b[i..end]).all(|(s, c)| match s {
            b'd' => c.is_ascii_digit(),
            _ => *c == b'-',
        });
        let joined_before =
            is_digit(b, i.wrapping_sub(1)) || (i >= 2 && b[i - 1] == b'-' && is_digit(b, i - 2));
        let joined_after = is_digit(b, end) || (b.get(end) == Some(&b'-') && is_digit(b, end + 1));
        if !is_shape || joined_before || joined_after {
            continue;
        }
        let (area, group, serial) = (&b[i..i + 3], &b[i + 4..i + 6], &b[i + 7..end]);
        if area == b"000"
            || area == b"666"
            || area[0] == b'9'
            || group == b"00"
            || serial == b"0000"
        {
            continue;
        }
        out.push(i..end);
    }
    out
}

// ---------------------------------------------------------------------------------------
// UK national insurance numbers

/// HMRC: these letters are never the first letter of a NINO prefix.
const NINO_BAD_FIRST: &[u8] = b"DFIQUV";
/// HMRC: these letters are never the second letter of a NINO prefix.
const NINO_BAD_SECOND: &[u8] = b"DFIOQUV";
/// HMRC: prefixes never allocated.
const NINO_BAD_PREFIXES: &[&[u8; 2]] = &[b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"];

/// NINOs: two upper-case prefix letters (HMRC's exclusions applied), six digits and a
/// suffix `A`–`D`, written compact (`AB123456C`) or spaced in pairs (`AB 12 34 56 C`), not
/// inside a longer word.
fn ninos(b: &[u8]) -> Vec<Range<usize>> {
    const COMPACT: &[u8] = b"LLddddddS";
    const SPACED: &[u8] = b"LL dd dd dd S";
    let mut out = Vec::new();
    let mut i = 0;
    while i + COMPACT.len() <= b.len() {
        let fits = |shape: &[u8]| {
            let end = i + shape.len();
            let ok = end <= b.len()
                && shape.iter().zip(&b[i..end]).all(|(s, c)| match s {
                    b'L' => c.is_ascii_uppercase(),
                    b'd' => c.is_ascii_digit(),
                    b'S' => (b'A'..=b'D').contains(c),
                    _ => c == s,
                })
                && !is_alnum(b, end);
            ok.then_some(end)
        };
        let found = if i > 0 && b[i - 1].is_ascii_alphanumeric() {
            None
        } else {
            fits(COMPACT).or_else(|| fits(SPACED))
        };
        match found {
            Some(end) if is_nino_prefix(b[i], b[i + 1]) => {
                out.push(i..end);
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

fn is_nino_prefix(first: u8, second: u8) -> bool {
    !NINO_BAD_FIRST.contains(&first)
        && !NINO_BAD_SECOND.contains(&second)
        && !NINO_BAD_PREFIXES.contains(&&[first, second])
}

#[cfg(test)]
#[path = "detectors_tests.rs"]
mod tests;
