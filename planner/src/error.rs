use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// One thing wrong with a config file, located by field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// e.g. `column_map[2].source`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, Error)]
pub enum PlannerError {
    #[error("{}: cannot read: {message}", file.display())]
    Io { file: PathBuf, message: String },

    #[error("{}:{line}:{column}: invalid YAML: {message}", file.display())]
    Yaml {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// A file, or the document its aliases expand to, past a size limit
    /// (`yaml::MAX_FILE_BYTES` and the others); `at` is the line and column
    /// where the document went past it.
    #[error("{}{}: {message}", file.display(), at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    TooLarge {
        file: PathBuf,
        at: Option<(usize, usize)>,
        message: String,
    },

    #[error("{}:{line}:{column}: {message}", file.display())]
    UnknownField {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("{}:{line}: environment variable {var} is not set; export it or edit the file", file.display())]
    MissingEnv {
        file: PathBuf,
        line: usize,
        var: String,
    },

    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },

    /// The source's bounds make more partitions than a run can take.
    #[error("pipeline {pipeline}: {message}")]
    TooManyPartitions { pipeline: String, message: String },

    #[error("{}: not supported yet: {path}", file.display())]
    NotSupported { file: PathBuf, path: String },

    #[error("{}: no datastores file: looked for {}; pass --datastores FILE", pipeline.display(), render_paths(searched))]
    NoDatastores {
        pipeline: PathBuf,
        searched: Vec<PathBuf>,
    },
}

impl PlannerError {
    pub(crate) fn invalid(
        file: &Path,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        PlannerError::Invalid {
            file: file.to_path_buf(),
            problems: vec![Problem {
                path: path.into(),
                message: message.into(),
            }],
        }
    }
}

fn render_problems(file: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", file.display(), p))
        .collect::<Vec<_>>()
        .join("\n")
}

fn render_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub type Result<T, E = PlannerError> = std::result::Result<T, E>;
