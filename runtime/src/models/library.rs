//! Finding ONNX Runtime's shared library and creating the process's one ort environment.
//!
//! `ort` is built with `load-dynamic`: nothing is linked at build time, the library is
//! opened when the first model is loaded. Resolution order:
//!
//! 1. `ORT_DYLIB_PATH`, when set and not empty (a path that does not exist is an error,
//!    not a reason to look elsewhere: whoever set it meant that file);
//! 2. the project venv: `<root>/.venv/lib/python3*/site-packages/onnxruntime/capi/
//!    libonnxruntime.so*`, where `<root>` is given, or found by walking up from the
//!    current directory to the folder holding `agents/training/setup.sh`;
//! 3. the system: `libonnxruntime.so` through the dynamic loader's search path.
//!
//! When none loads, the error names what was tried and the command that fixes it,
//! [`SETUP_COMMAND`].

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The command that installs ONNX Runtime into the project venv (and prints its path).
pub const SETUP_COMMAND: &str = "agents/training/setup.sh";

/// The environment variable naming the library explicitly.
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// The file that marks the project root.
const ROOT_MARKER: &str = "agents/training/setup.sh";

/// The name the system loader is asked for.
const SYSTEM_NAME: &str = "libonnxruntime.so";

/// What a failure to find or load the library says to do.
const FIX: &str = "run `agents/training/setup.sh` (it installs onnxruntime 1.31.1 into the \
                   project venv), or set ORT_DYLIB_PATH to a libonnxruntime.so of version 1.31 \
                   or later";

/// Where the library was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibrarySource {
    /// `ORT_DYLIB_PATH`.
    EnvVar,
    /// The project venv (`agents/training/setup.sh`).
    ProjectVenv,
    /// The system's dynamic loader.
    System,
}

impl fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LibrarySource::EnvVar => "from ORT_DYLIB_PATH",
            LibrarySource::ProjectVenv => "from the project venv",
            LibrarySource::System => "from the system loader",
        })
    }
}

/// A library to load: a path (or, for [`LibrarySource::System`], a bare name for the
/// loader) and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryLocation {
    /// The file, or the bare name the loader searches for.
    pub path: PathBuf,
    /// Which step of the resolution order gave it.
    pub source: LibrarySource,
}

/// Finding or loading ONNX Runtime failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LibraryError {
    /// `ORT_DYLIB_PATH` names a file that does not exist.
    #[error(
        "ORT_DYLIB_PATH is set to `{}`, which does not exist; point it at a \
         libonnxruntime.so of version 1.31 or later, or unset it and run \
         `agents/training/setup.sh` to use the project venv",
        path.display()
    )]
    EnvPathMissing {
        /// The value of the variable.
        path: PathBuf,
    },
    /// No step of the resolution order found a library.
    #[error("ONNX Runtime library not found ({tried}); {FIX}")]
    NotFound {
        /// What was looked at, in order.
        tried: String,
    },
    /// A library was found but could not be loaded (not a library, wrong version).
    #[error("cannot load ONNX Runtime {source_kind} (`{}`): {message}; {FIX}", path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// Where it came from.
        source_kind: LibrarySource,
        /// The loader's error.
        message: String,
    },
    /// The library loaded but the environment could not be created.
    #[error("cannot create the ONNX Runtime environment: {message}")]
    Environment {
        /// ONNX Runtime's error.
        message: String,
    },
}

/// The inputs of the resolution order, so that it can be run (and tested) without
/// touching the process environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibrarySearch {
    /// The value of `ORT_DYLIB_PATH` (`None` or empty: unset).
    pub env_path: Option<OsString>,
    /// The project root (the folder holding `agents/training/setup.sh`), if known.
    pub project_root: Option<PathBuf>,
}

impl LibrarySearch {
    /// The search for this process: `ORT_DYLIB_PATH` from the environment, the project
    /// root found by walking up from the current directory.
    pub fn from_env() -> Self {
        let project_root = std::env::current_dir()
            .ok()
            .and_then(|dir| find_project_root(&dir));
        LibrarySearch {
            env_path: std::env::var_os(ENV_VAR),
            project_root,
        }
    }

    /// The same search with an explicit project root.
    #[must_use]
    pub fn with_project_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.project_root = Some(root.into());
        self
    }

    /// Runs the resolution order up to the system step, which cannot be checked without
    /// asking the loader: `Ok` with a [`LibrarySource::System`] location means "ask the
    /// loader for `libonnxruntime.so`".
    ///
    /// # Errors
    /// [`LibraryError::EnvPathMissing`] when `ORT_DYLIB_PATH` names no file.
    pub fn locate(&self) -> Result<LibraryLocation, LibraryError> {
        if let Some(path) = self.env_path.as_ref().filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            if !path.exists() {
                return Err(LibraryError::EnvPathMissing { path });
            }
            return Ok(LibraryLocation {
                path,
                source: LibrarySource::EnvVar,
            });
        }
        if let Some(path) = self.project_root.as_deref().and_then(venv_library) {
            return Ok(LibraryLocation {
                path,
                source: LibrarySource::ProjectVenv,
            });
        }
        Ok(LibraryLocation {
            path: PathBuf::from(SYSTEM_NAME),
            source: LibrarySource::System,
        })
    }

    /// The error when the system step failed too: what was tried, in order.
    pub fn not_found(&self, loader_message: &str) -> LibraryError {
        let env = match self.env_path.as_ref().filter(|p| !p.is_empty()) {
            Some(p) => format!("{ENV_VAR}={}", Path::new(p).display()),
            None => format!("{ENV_VAR} is not set"),
        };
        let venv = match &self.project_root {
            Some(root) => format!(
                "no {} in {}",
                "libonnxruntime.so*",
                root.join(".venv/lib/python3*/site-packages/onnxruntime/capi")
                    .display()
            ),
            None => format!(
                "no project root (no folder above the current one holds {ROOT_MARKER}), so \
                 no project venv"
            ),
        };
        LibraryError::NotFound {
            tried: format!("{env}; {venv}; system loader: {loader_message}"),
        }
    }
}

/// The nearest folder at or above `start` that holds `agents/training/setup.sh`.
pub fn find_project_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(ROOT_MARKER).is_file())
        .map(Path::to_path_buf)
}

/// `<root>/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`; of
/// several matches, the last in name order (as `setup.sh` picks), which prefers the
/// fully versioned file over a bare `.so`.
fn venv_library(root: &Path) -> Option<PathBuf> {
    let lib = root.join(".venv").join("lib");
    let mut found: Vec<PathBuf> = Vec::new();
    for python in read_dir_sorted(&lib) {
        let is_python3 = python
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("python3"));
        if !is_python3 {
            continue;
        }
        let capi = python.join("site-packages/onnxruntime/capi");
        for file in read_dir_sorted(&capi) {
            let is_lib = file
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"));
            if is_lib && file.is_file() {
                found.push(file);
            }
        }
    }
    found.pop()
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    entries.sort();
    entries
}

/// The process's ONNX Runtime environment (ort allows one per process).
pub struct OrtEnvironment {
    env: ort::environment::Environment,
    library: LibraryLocation,
}

impl fmt::Debug for OrtEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrtEnvironment")
            .field("library", &self.library)
            .finish_non_exhaustive()
    }
}

static GLOBAL: OnceLock<Result<OrtEnvironment, LibraryError>> = OnceLock::new();

impl OrtEnvironment {
    /// The environment, created on first use with [`LibrarySearch::from_env`].
    ///
    /// # Errors
    /// The (remembered) [`LibraryError`] when the library could not be found or loaded.
    pub fn global() -> Result<&'static OrtEnvironment, LibraryError> {
        GLOBAL
            .get_or_init(|| Self::create(&LibrarySearch::from_env()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The environment, created on first use with `search`. Only the first call's search
    /// counts: the library cannot be swapped once loaded.
    ///
    /// # Errors
    /// The (remembered) [`LibraryError`] when the library could not be found or loaded.
    pub fn init(search: &LibrarySearch) -> Result<&'static OrtEnvironment, LibraryError> {
        GLOBAL
            .get_or_init(|| Self::create(search))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn create(search: &LibrarySearch) -> Result<OrtEnvironment, LibraryError> {
        let library = search.locate()?;
        let builder = match ort::init_from(&library.path) {
            Ok(builder) => builder,
            Err(e) if library.source == LibrarySource::System => {
                return Err(search.not_found(&e.to_string()));
            }
            Err(e) => {
                return Err(LibraryError::Load {
                    path: library.path.clone(),
                    source_kind: library.source,
                    message: e.to_string(),
                });
            }
        };
        let env = builder
            .with_name("conclave")
            .with_telemetry(false)
            .build()
            .map_err(|e| LibraryError::Environment {
                message: e.to_string(),
            })?;
        Ok(OrtEnvironment { env, library })
    }

    /// Which library was loaded.
    pub fn library(&self) -> &LibraryLocation {
        &self.library
    }

    /// ONNX Runtime's build information (version, commit).
    pub fn build_info(&self) -> &'static str {
        ort::info()
    }

    pub(crate) fn env(&self) -> &ort::environment::Environment {
        &self.env
    }
}
