//! What a reviewer sees of a run besides the KTAP: the Markdown summary
//! (`--markdown FILE`, for `$GITHUB_STEP_SUMMARY`) and, when the rig runs
//! as a GitHub Actions step (`GITHUB_ACTIONS=true`), an annotation per
//! failed step on its line in the config. Annotations go to stderr: the
//! runner reads workflow commands from both streams, and stdout stays KTAP
//! even when it is redirected to a file.

use anyhow::Context;
use rig::plan::ConfigError;
use rig::results::annotations::{self, Annotation, Level};
use rig::results::{markdown, Tree, Workspace};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// True when the rig runs as a step of a GitHub Actions job.
pub fn in_github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The checkout: `GITHUB_WORKSPACE` (else the current directory), with
/// links to the repository when GitHub names it.
pub fn workspace() -> Workspace {
    let root = var("GITHUB_WORKSPACE").map(PathBuf::from).or_else(|| std::env::current_dir().ok());
    // Canonical, as the configs' paths are.
    let root = root.map(|r| std::fs::canonicalize(&r).unwrap_or(r));
    Workspace::new(
        root,
        var("GITHUB_SERVER_URL").as_deref(),
        var("GITHUB_REPOSITORY").as_deref(),
        var("GITHUB_SHA").as_deref(),
    )
}

/// Under GitHub Actions, prints the annotations of `tree`.
pub fn annotate(tree: &Tree) {
    if in_github_actions() {
        for a in annotations::annotations(tree, &workspace()) {
            eprintln!("{}", a.command());
        }
    }
}

/// Under GitHub Actions, a configuration error as an annotation on its line.
pub fn annotate_config_error(e: &ConfigError) {
    if in_github_actions() {
        eprintln!("{}", config_annotation(e, &workspace()).command());
    }
}

/// The annotation of a configuration error: on its line when the config is
/// in the checkout, else with the place in the message.
fn config_annotation(e: &ConfigError, ws: &Workspace) -> Annotation {
    let (path, at) = match e {
        ConfigError::Read { path, .. } => (path, None),
        ConfigError::Parse { path, line, message } => (path, Some((*line, message.clone()))),
        ConfigError::Invalid { path, line, key, message } => (path, Some((*line, format!("{key}: {message}")))),
    };
    let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
    let title = "rig: configuration error".to_owned();
    match (ws.relative(&file), at) {
        (Some(rel), Some((line, message))) => {
            Annotation { level: Level::Error, file: Some(rel), line: Some(line), title, message }
        }
        _ => Annotation { level: Level::Error, file: None, line: None, title, message: e.to_string() },
    }
}

/// The heading's subject: `rig: <config>`, the config relative to the checkout.
pub fn title(config: &Path) -> String {
    let ws = workspace();
    let abs = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    format!("rig: {}", ws.relative(&abs).unwrap_or_else(|| config.display().to_string()))
}

/// Writes the Markdown summary of `tree` to `path`.
pub fn write_markdown(path: &Path, tree: &Tree, title: &str, wall: Option<Duration>) -> anyhow::Result<()> {
    let ws = workspace();
    let text = markdown::document(tree, &markdown::Options { title, wall, workspace: &ws });
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_error_points_at_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::create_dir(root.join("ci")).expect("mkdir");
        std::fs::write(root.join("ci/rig.toml"), "[guest]\ncpus = 0\n").expect("config");
        let e = ConfigError::Invalid {
            path: root.join("ci/rig.toml"),
            line: 2,
            key: "guest.cpus".into(),
            message: "0 is out of range: give 1 to 64".into(),
        };
        let ws = Workspace::new(Some(root.clone()), None, None, None);
        assert_eq!(
            config_annotation(&e, &ws).command(),
            "::error file=ci/rig.toml,line=2,title=rig%3A configuration error::guest.cpus: 0 is out of range: give 1 to 64"
        );
        // Outside the checkout: no file, the place in the message.
        let elsewhere = Workspace::new(Some("/elsewhere".into()), None, None, None);
        let a = config_annotation(&e, &elsewhere);
        assert_eq!((a.file.as_ref(), a.line), (None, None));
        assert_eq!(a.message, e.to_string());
        assert!(a.message.ends_with("rig.toml:2: guest.cpus: 0 is out of range: give 1 to 64"));
    }
}
