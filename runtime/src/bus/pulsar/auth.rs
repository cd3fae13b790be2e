//! Credentials for the broker: the token, read when connecting and kept out of every log
//! line, `Debug` output and error message; the CA certificates for `pulsar+ssl://`.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;

use super::PulsarError;
use crate::policy::transport::{PulsarAuth, PulsarSettings};

/// A token. `Debug` prints `Token(***)`; there is no `Display` and no way to read it back
/// except handing it to the client.
#[derive(Clone)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// Reads the token from where `auth` says; `var` looks environment variables up.
    ///
    /// # Errors
    /// [`PulsarError::TokenUnreadable`] when the file cannot be read,
    /// [`PulsarError::TokenInvalid`] when it or the variable is missing, empty or holds more
    /// than one token. No message contains the content.
    pub fn load(
        auth: &PulsarAuth,
        var: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Token, PulsarError> {
        let invalid = |problem: &'static str| PulsarError::TokenInvalid {
            from: auth.clone(),
            problem,
        };
        let text = match auth {
            PulsarAuth::TokenFile(path) => {
                let bytes = std::fs::read(path).map_err(|source| PulsarError::TokenUnreadable {
                    from: auth.clone(),
                    source,
                })?;
                String::from_utf8(bytes).map_err(|_| invalid("is not text"))?
            }
            PulsarAuth::TokenEnv(name) => var(name)
                .ok_or_else(|| invalid("is not set"))?
                .into_string()
                .map_err(|_| invalid("is not text"))?,
        };
        let token = text.trim();
        if token.is_empty() {
            return Err(invalid("is empty"));
        }
        // A token has no whitespace inside; this is the wrong file (a key, a config).
        if token.contains(char::is_whitespace) {
            return Err(invalid(
                "holds more than one word; expected the token alone (the content is not shown)",
            ));
        }
        Ok(Token(token.to_owned()))
    }

    /// `text` with every occurrence of the token replaced by `***` (for messages that
    /// come from the broker or the client library).
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "***")
    }

    /// The token's bytes, for the wire only.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The CA certificates to trust for `pulsar+ssl://`, read from `path`.
///
/// # Errors
/// [`PulsarError::CaUnreadable`] when the file cannot be read, [`PulsarError::CaInvalid`]
/// when it holds no PEM certificate.
pub(crate) fn read_ca(path: &Path) -> Result<Vec<u8>, PulsarError> {
    let pem = std::fs::read(path).map_err(|source| PulsarError::CaUnreadable {
        path: path.to_owned(),
        source,
    })?;
    let marker: &[u8] = b"-----BEGIN CERTIFICATE-----";
    if !pem.windows(marker.len()).any(|w| w == marker) {
        return Err(PulsarError::CaInvalid {
            path: path.to_owned(),
        });
    }
    Ok(pem)
}

/// Refuses TLS settings on a plain `pulsar://` URL: the operator asked for TLS, and the
/// token would travel in clear.
///
/// # Errors
/// [`PulsarError::TlsWithoutSsl`].
pub(crate) fn check_tls_url(url: &str, settings: &PulsarSettings) -> Result<(), PulsarError> {
    if settings.tls.is_some() && !url.starts_with("pulsar+ssl://") {
        return Err(PulsarError::TlsWithoutSsl {
            url: url.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::PathBuf;

    use super::{check_tls_url, read_ca, Token};
    use crate::policy::transport::{PulsarAuth, PulsarSettings, PulsarTls};

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjb25jbGF2ZSJ9.c2lnbmF0dXJl";

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn a_token_file_is_read_and_trimmed_and_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{JWT}\n")).expect("written");
        let token = Token::load(&PulsarAuth::TokenFile(path.clone()), no_env).expect("token");
        assert_eq!(format!("{token:?}"), "Token(***)");
        assert_eq!(token.redact(&format!("bad token {JWT}!")), "bad token ***!");
        assert_eq!(token.as_bytes(), JWT.as_bytes());

        let err = |auth: PulsarAuth| Token::load(&auth, no_env).expect_err("refused").to_string();
        std::fs::write(&path, " \n").expect("written");
        assert_eq!(
            err(PulsarAuth::TokenFile(path.clone())),
            format!("the Pulsar token in file `{}` is empty", path.display())
        );
        std::fs::write(&path, format!("{JWT}\nsecond line {JWT}")).expect("written");
        let two = err(PulsarAuth::TokenFile(path.clone()));
        assert_eq!(
            two,
            format!(
                "the Pulsar token in file `{}` holds more than one word; expected the token alone (the content is not shown)",
                path.display()
            )
        );
        let missing = dir.path().join("missing");
        let e = Token::load(&PulsarAuth::TokenFile(missing.clone()), no_env).expect_err("missing");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read the Pulsar token in file `{}`",
                missing.display()
            )
        );
        assert!(
            std::error::Error::source(&e).is_some(),
            "the I/O error is the source"
        );
    }

    #[test]
    fn a_token_from_the_environment() {
        let env = |name: &str| (name == "T").then(|| OsString::from(format!("  {JWT} ")));
        let token = Token::load(&PulsarAuth::TokenEnv("T".into()), env).expect("token");
        assert_eq!(token.redact(JWT), "***");
        assert_eq!(
            Token::load(&PulsarAuth::TokenEnv("U".into()), env)
                .expect_err("unset")
                .to_string(),
            "the Pulsar token in environment variable `U` is not set"
        );
    }

    #[test]
    fn ca_files_and_tls_urls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .expect("written");
        assert!(read_ca(&ca).is_ok());
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").expect("written");
        assert_eq!(
            read_ca(&key).expect_err("no cert").to_string(),
            format!(
                "the CA file `{}` holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----`)",
                key.display()
            )
        );
        let missing = PathBuf::from("/nonexistent/ca.pem");
        assert_eq!(
            read_ca(&missing).expect_err("missing").to_string(),
            "cannot read the CA file `/nonexistent/ca.pem`"
        );

        let mut settings = PulsarSettings::default();
        assert!(check_tls_url("pulsar://127.0.0.1:6650", &settings).is_ok());
        settings.tls = Some(PulsarTls::default());
        assert!(check_tls_url("pulsar+ssl://127.0.0.1:6651", &settings).is_ok());
        assert_eq!(
            check_tls_url("pulsar://127.0.0.1:6650", &settings)
                .expect_err("plain URL")
                .to_string(),
            "TLS settings are given (`spec.pulsar.tls` or CONCLAVE_PULSAR_TLS_CA_FILE) but `pulsar://127.0.0.1:6650` does not use TLS; use a `pulsar+ssl://` URL"
        );
    }
}
