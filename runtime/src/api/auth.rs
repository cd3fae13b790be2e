//! Bearer tokens: a YAML file holds each token's argon2 hash, never the token itself.
//!
//! A token reads `conclave_<id>_<secret>`. The id picks the one entry to check, so a
//! request with an unknown id is refused without hashing anything, and a wrong secret
//! costs exactly one argon2 verification. Verifications run one at a time on the blocking
//! pool, so a flood of bad tokens takes at most one core from the agents. A token that
//! verified once is remembered (by its SHA-256) for the life of the process.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::overrides::{Actor, Role};

const PREFIX: &str = "conclave_";

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("API tokens `{path}`: {error}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
    /// The file is not a valid token file.
    #[error("API tokens `{path}`{loc}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// `:line:column` when known.
        loc: String,
        /// What is wrong.
        message: String,
    },
}

/// One token as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The token's id (the part after `conclave_`), 8 hex digits.
    pub id: String,
    /// Whose token it is: the name recorded on everything they do.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// The secret's argon2 hash (PHC string).
    pub hash: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    tokens: Vec<TokenEntry>,
}

/// Why a request's credentials were refused. The message never repeats the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing bearer token (send `Authorization: Bearer <token>`)")]
    Missing,
    /// Not a bearer token of ours.
    #[error("malformed bearer token (expected `conclave_<id>_<secret>`)")]
    Malformed,
    /// Unknown id or wrong secret (not told apart, so ids cannot be probed).
    #[error("invalid bearer token")]
    Invalid,
}

/// The loaded token file, with a cache of tokens that verified.
#[derive(Clone)]
pub struct TokenStore {
    entries: Arc<BTreeMap<String, TokenEntry>>,
    verified: Arc<Mutex<HashMap<[u8; 32], Actor>>>,
    hashing: Arc<Semaphore>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("tokens", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl TokenStore {
    /// Reads and checks a token file.
    ///
    /// # Errors
    /// [`TokenFileError`] naming the file, and the line and column when the YAML is at
    /// fault.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| TokenFileError::Io {
            path: shown.clone(),
            error,
        })?;
        Self::parse(&shown, &text)
    }

    /// Parses token-file text; `path` is only for messages.
    ///
    /// # Errors
    /// [`TokenFileError::Invalid`].
    pub fn parse(path: &str, text: &str) -> Result<Self, TokenFileError> {
        let invalid = |loc: String, message: String| TokenFileError::Invalid {
            path: path.to_string(),
            loc,
            message,
        };
        let file: TokenFile = serde_saphyr::from_str(text).map_err(|e| {
            let mut message = e.without_snippet().to_string();
            let loc = match e.location() {
                Some(l) => {
                    // The location is printed once, up front.
                    let suffix = format!(" at line {}, column {}", l.line(), l.column());
                    if let Some(m) = message.strip_suffix(&suffix) {
                        message = m.to_string();
                    }
                    format!(":{}:{}", l.line(), l.column())
                }
                None => String::new(),
            };
            invalid(loc, message)
        })?;
        let mut entries = BTreeMap::new();
        for (i, t) in file.tokens.into_iter().enumerate() {
            let at = |m: String| invalid(String::new(), format!("tokens[{i}]: {m}"));
            if t.id.len() != 8 || !t.id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(at(format!("id `{}` is not 8 hex digits", t.id)));
            }
            if t.name.trim().is_empty() {
                return Err(at("name is empty".into()));
            }
            if let Err(e) = PasswordHash::new(&t.hash) {
                return Err(at(format!("hash is not an argon2 PHC string ({e})")));
            }
            if entries.contains_key(&t.id) {
                return Err(at(format!("id `{}` is used twice", t.id)));
            }
            entries.insert(t.id.clone(), t);
        }
        Ok(TokenStore {
            entries: Arc::new(entries),
            verified: Arc::new(Mutex::new(HashMap::new())),
            hashing: Arc::new(Semaphore::new(1)),
        })
    }

    /// Who an `Authorization` header value belongs to.
    ///
    /// # Errors
    /// [`AuthError`] saying what is wrong, without repeating the token.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Actor, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or(AuthError::Malformed)?
            .trim();
        let (id, secret) = token
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .ok_or(AuthError::Malformed)?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(actor) = self.cached(&key) {
            return Ok(actor);
        }
        let entry = self.entries.get(id).ok_or(AuthError::Invalid)?.clone();
        let permit = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AuthError::Invalid)?;
        // Several first requests with one token arrive together: the first verifies it,
        // the others find it cached once they get the permit.
        if let Some(actor) = self.cached(&key) {
            return Ok(actor);
        }
        let secret = secret.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            PasswordHash::new(&entry.hash)
                .is_ok_and(|h| {
                    Argon2::default()
                        .verify_password(secret.as_bytes(), &h)
                        .is_ok()
                })
                .then_some(entry)
        })
        .await
        .map_err(|_| AuthError::Invalid)?;
        let entry = ok.ok_or(AuthError::Invalid)?;
        let actor = Actor {
            name: entry.name,
            role: entry.role,
        };
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, actor.clone());
        Ok(actor)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Actor> {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenGenError {
    /// The system's random source failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// Hashing failed.
    #[error("cannot hash the token: {0}")]
    Hash(String),
}

/// A new token for `name` in `role`: the token (shown once) and the entry to store.
///
/// # Errors
/// [`TokenGenError`] when the OS has no randomness or hashing fails.
pub fn generate(name: &str, role: Role) -> Result<(String, TokenEntry), TokenGenError> {
    let mut id = [0u8; 4];
    let mut secret = [0u8; 24];
    let mut salt = [0u8; 16];
    for buf in [&mut id[..], &mut secret[..], &mut salt[..]] {
        getrandom::fill(buf).map_err(|e| TokenGenError::Random(e.to_string()))?;
    }
    let id = hex(&id);
    let secret = hex(&secret);
    let salt = SaltString::encode_b64(&salt).map_err(|e| TokenGenError::Hash(e.to_string()))?;
    let hash = Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|e| TokenGenError::Hash(e.to_string()))?
        .to_string();
    Ok((
        format!("{PREFIX}{id}_{secret}"),
        TokenEntry {
            id,
            name: name.to_string(),
            role,
            hash,
        },
    ))
}

/// The YAML of a token file holding `entries` (for `conclave api token`).
///
/// # Errors
/// When serialization fails (it does not for these types).
pub fn to_yaml(entries: &[TokenEntry]) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(&TokenFile {
        tokens: entries.to_vec(),
    })
}

/// The entries of a token file's text (for appending to it).
///
/// # Errors
/// As [`TokenStore::parse`].
pub fn entries(path: &str, text: &str) -> Result<Vec<TokenEntry>, TokenFileError> {
    let store = TokenStore::parse(path, text)?;
    Ok(store.entries.values().cloned().collect())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(entries: &[TokenEntry]) -> TokenStore {
        TokenStore::parse("t.yaml", &to_yaml(entries).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_generated_token_authenticates_as_its_owner_and_nothing_else_does() {
        let (token, entry) = generate("ana", Role::Operator).unwrap();
        assert!(!to_yaml(std::slice::from_ref(&entry))
            .unwrap()
            .contains(&token[18..]));
        let store = store_with(std::slice::from_ref(&entry));
        let bearer = format!("Bearer {token}");
        let who = store.authenticate(Some(&bearer)).await.unwrap();
        assert_eq!((who.name.as_str(), who.role), ("ana", Role::Operator));
        // Second time from the cache, same answer.
        assert_eq!(store.authenticate(Some(&bearer)).await.unwrap(), who);

        let wrong_secret = format!("Bearer conclave_{}_{}", entry.id, "0".repeat(48));
        let unknown_id = format!("Bearer conclave_00000000_{}", &token[18..]);
        for (header, want) in [
            (None, AuthError::Missing),
            (Some(token.as_str()), AuthError::Malformed),
            (Some("Bearer abc"), AuthError::Malformed),
            (Some(wrong_secret.as_str()), AuthError::Invalid),
            (Some(unknown_id.as_str()), AuthError::Invalid),
        ] {
            assert_eq!(store.authenticate(header).await, Err(want), "{header:?}");
        }
    }

    #[test]
    fn bad_token_files_say_where_and_what() {
        let err = |text: &str| TokenStore::parse("t.yaml", text).unwrap_err().to_string();
        assert_eq!(
            err("tokens:\n  - id: abcd1234\n    name: ana\n    role: boss\n    hash: x\n"),
            "API tokens `t.yaml`:4:11: unknown variant `boss`, expected one of viewer, operator, admin"
        );
        assert_eq!(
            err("tokens:\n  - id: xyz\n    name: ana\n    role: admin\n    hash: x\n"),
            "API tokens `t.yaml`: tokens[0]: id `xyz` is not 8 hex digits"
        );
        assert!(err(
            "tokens:\n  - id: abcd1234\n    name: ana\n    role: admin\n    hash: plain\n"
        )
        .starts_with("API tokens `t.yaml`: tokens[0]: hash is not an argon2 PHC string"),);
        let (_, e) = generate("ana", Role::Viewer).unwrap();
        let id = e.id.clone();
        assert_eq!(
            err(&to_yaml(&[e.clone(), e]).unwrap()),
            format!("API tokens `t.yaml`: tokens[1]: id `{id}` is used twice")
        );
    }
}
