//! Resolving a ref and fetching a revision with gix.
//!
//! Design note: one bare repository per URL under the cache directory
//! (`<cache>/<sha256(url)[..16]>.git`) holds the objects; a revision is a
//! commit id in it, read straight from the object database (no worktree,
//! no checkout). A reconcile opens one connection: the ref advertisement is
//! the `ls-remote` step, and the pack is only received when the commit is
//! not in the cache yet — depth 1, so a large history is never downloaded.
//! Everything here is blocking (gix's network client is); callers run it
//! on `spawn_blocking`.
//!
//! Transports: `https://` (username/password or bearer token from the
//! GitSync's `secretRef`), `http://` only to loopback hosts (tests, local
//! mirrors; never credentials over plain HTTP elsewhere), and `file://`.
//! For `file://` gix itself starts `git-upload-pack` (the local transport
//! speaks the Git protocol to it); no other Git process is started. `ssh://`
//! is refused with a clear error: gix's ssh transport spawns the system
//! `ssh` client, and host-key pinning plus key handling through it was more
//! than this first version could make safe — use https with a token.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};

use super::spec::GitRef;
use crate::secret::{ExposeSecret, SecretString};

/// Credentials for an https remote. Values stay in `SecretString`.
#[derive(Default)]
pub struct Credentials {
    /// Basic-auth user name (`git` when only a password is given).
    pub username: Option<String>,
    /// Basic-auth password or personal access token.
    pub password: Option<SecretString>,
    /// Sent as `Authorization: Bearer …`.
    pub bearer_token: Option<SecretString>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// One file of the revision, path relative to the repository root.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// `/`-separated path from the repository root.
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
}

/// A fetched revision.
#[derive(Debug)]
pub struct Revision {
    /// Full commit id.
    pub commit: String,
    /// Display form (`main@sha1:abcdef12`).
    pub display: String,
    /// Whether the commit came from the cache (no pack received).
    pub cached: bool,
    /// Manifest candidates (`*.yaml|*.yml|*.json`) under the sync path.
    pub files: Vec<SourceFile>,
}

/// Why a revision could not be fetched. Messages carry the URL (which
/// never holds credentials: they come from a Secret) and the ref.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The URL scheme is not supported or not allowed.
    #[error("source.url {url}: {reason}")]
    UnsupportedUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The ref does not exist on the remote.
    #[error("{url}: {what} not found on the remote")]
    RefNotFound {
        /// The URL.
        url: String,
        /// `branch main`, `tag v1`, `commit …`.
        what: String,
    },
    /// A Git operation failed.
    #[error("{url}: {step}: {reason}")]
    Git {
        /// The URL.
        url: String,
        /// What was being done.
        step: &'static str,
        /// gix's message.
        reason: String,
    },
    /// The sync path does not exist in the revision or is not a directory.
    #[error("path {path:?} does not exist in commit {commit} (or is not a directory)")]
    PathNotFound {
        /// The path.
        path: String,
        /// The commit.
        commit: String,
    },
    /// A file exceeds the size cap.
    #[error("{path}: {size} bytes exceeds the {limit}-byte cap per file")]
    FileTooLarge {
        /// File.
        path: String,
        /// Its size.
        size: usize,
        /// The cap.
        limit: usize,
    },
}

impl SourceError {
    /// One CamelCase word for status reasons and metric labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::UnsupportedUrl { .. } => "UnsupportedSource",
            Self::RefNotFound { .. } => "RefNotFound",
            Self::Git { .. } => "FetchFailed",
            Self::PathNotFound { .. } => "PathNotFound",
            Self::FileTooLarge { .. } => "RenderFailed",
        }
    }

    /// Whether retrying may help (network) or a spec/commit change is needed.
    pub fn transient(&self) -> bool {
        matches!(self, Self::Git { .. })
    }
}

/// Largest manifest file read from a revision (as Flux).
pub const MAX_FILE_BYTES: usize = 5 * 1024 * 1024;

/// Checks the URL scheme before any network or process activity.
pub fn check_url(url: &str) -> Result<(), SourceError> {
    let bad = |reason: &str| SourceError::UnsupportedUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if url.starts_with("https://") || url.starts_with("file://") {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or("");
        return if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            Ok(())
        } else {
            Err(bad(
                "plain http is allowed to loopback hosts only; use https",
            ))
        };
    }
    if url.starts_with("ssh://") || url.contains('@') && !url.contains("://") {
        return Err(bad(
            "ssh is not supported yet (gix's ssh transport runs the system ssh client); use https with a token in secretRef",
        ));
    }
    Err(bad(
        "only https://, file:// (and http:// to loopback) URLs are supported",
    ))
}

/// Where a URL's objects are cached.
pub fn cache_dir_for(cache_root: &Path, url: &str) -> PathBuf {
    let digest = Sha256::digest(url.as_bytes());
    cache_root.join(format!("{}.git", crate::gate::hex(&digest[..8])))
}

fn describe(r: &GitRef) -> String {
    match (&r.branch, &r.tag, &r.commit) {
        (_, _, Some(c)) => format!("commit {c}"),
        (Some(b), _, None) => format!("branch {b}"),
        (None, Some(t), None) => format!("tag {t}"),
        (None, None, None) => "HEAD".into(),
    }
}

/// Resolves `git_ref` on `url` and fetches the commit (if not cached),
/// returning the manifest candidates under `path`.
pub fn fetch(
    url: &str,
    git_ref: &GitRef,
    credentials: &Credentials,
    cache_root: &Path,
    path: &str,
) -> Result<Revision, SourceError> {
    check_url(url)?;
    let git_err = |step: &'static str| {
        let url = url.to_owned();
        move |e: gix::Error| SourceError::Git {
            url: url.clone(),
            step,
            reason: e.to_string(),
        }
    };
    let dir = cache_dir_for(cache_root, url);
    let repo = if dir.join("HEAD").exists() {
        gix::open(&dir).map_err(|e| SourceError::Git {
            url: url.to_owned(),
            step: "opening the cache",
            reason: e.to_string(),
        })?
    } else {
        std::fs::create_dir_all(&dir).map_err(|e| SourceError::Git {
            url: url.to_owned(),
            step: "creating the cache",
            reason: e.to_string(),
        })?;
        gix::init_bare(&dir).map_err(|e| SourceError::Git {
            url: url.to_owned(),
            step: "creating the cache",
            reason: e.to_string(),
        })?
    };
    let what = describe(git_ref);
    let refspec = match (&git_ref.branch, &git_ref.tag, &git_ref.commit) {
        (_, _, Some(c)) => c.clone(),
        (Some(b), _, None) => format!("+refs/heads/{b}:refs/remotes/origin/{b}"),
        (None, Some(t), None) => format!("+refs/tags/{t}:refs/tags/{t}"),
        (None, None, None) => "+HEAD:refs/remotes/origin/HEAD".into(),
    };
    let remote = repo
        .remote_at(url)
        .map_err(git_err("parsing the URL"))?
        .with_refspecs([refspec.as_str()], gix::remote::Direction::Fetch)
        .map_err(git_err("building the refspec"))?;
    let mut connection = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(git_err("connecting"))?;
    if let Some(token) = &credentials.bearer_token {
        let opts = gix::protocol::transport::client::blocking_io::http::Options {
            extra_headers: vec![format!("Authorization: Bearer {}", token.expose_secret())],
            ..Default::default()
        };
        connection = connection.with_transport_options(Box::new(opts));
    }
    let account = credentials
        .password
        .as_ref()
        .map(|p| gix::sec::identity::Account {
            username: credentials
                .username
                .clone()
                .unwrap_or_else(|| "git".to_owned()),
            password: p.expose_secret().to_owned(),
            oauth_refresh_token: None,
        });
    let connection = connection.with_credentials(move |action| match action {
        gix::credentials::helper::Action::Get(ctx) => {
            Ok(account
                .clone()
                .map(|identity| gix::credentials::protocol::Outcome {
                    identity,
                    next: ctx.into(),
                }))
        }
        _ => Ok(None),
    });
    let prepare = connection
        .prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(git_err("listing remote refs"))?;
    let commit_id = match &git_ref.commit {
        Some(c) => gix::ObjectId::from_hex(c.as_bytes()).map_err(|e| SourceError::Git {
            url: url.to_owned(),
            step: "parsing the commit id",
            reason: e.to_string(),
        })?,
        None => {
            let wanted = match (&git_ref.branch, &git_ref.tag) {
                (Some(b), _) => format!("refs/heads/{b}"),
                (None, Some(t)) => format!("refs/tags/{t}"),
                _ => "HEAD".to_owned(),
            };
            let mapping = prepare
                .ref_map()
                .mappings
                .iter()
                .find(|m| m.remote.as_name().is_some_and(|n| n == wanted.as_str()))
                .ok_or_else(|| SourceError::RefNotFound {
                    url: url.to_owned(),
                    what: what.clone(),
                })?;
            let id = match &mapping.remote {
                gix::protocol::fetch::refmap::Source::Ref(r) => {
                    let (_, target, peeled) = r.unpack();
                    peeled.or(target)
                }
                gix::protocol::fetch::refmap::Source::ObjectId(id) => Some(id.as_ref()),
            };
            id.map(ToOwned::to_owned)
                .ok_or_else(|| SourceError::RefNotFound {
                    url: url.to_owned(),
                    what: what.clone(),
                })?
        }
    };
    let cached = repo.find_commit(commit_id).is_ok();
    if !cached {
        let depth = NonZeroU32::MIN;
        prepare
            .with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(depth))
            .receive(gix::progress::Discard, &AtomicBool::new(false))
            .map_err(|e| {
                if git_ref.commit.is_some() {
                    SourceError::RefNotFound {
                        url: url.to_owned(),
                        what: format!("{what} ({e})"),
                    }
                } else {
                    SourceError::Git {
                        url: url.to_owned(),
                        step: "fetching",
                        reason: e.to_string(),
                    }
                }
            })?;
    } else {
        drop(prepare);
    }
    // Re-open so objects from the new pack are visible.
    let repo = gix::open(&dir).map_err(|e| SourceError::Git {
        url: url.to_owned(),
        step: "opening the cache",
        reason: e.to_string(),
    })?;
    let commit = repo
        .find_commit(commit_id)
        .map_err(|_| SourceError::RefNotFound {
            url: url.to_owned(),
            what: what.clone(),
        })?;
    let tree = commit.tree().map_err(git_err("reading the tree"))?;
    let hex = commit_id.to_string();
    let clean = path.trim_start_matches("./").trim_matches('/');
    let start = if clean.is_empty() || clean == "." {
        tree
    } else {
        let entry = tree
            .lookup_entry_by_path(clean)
            .map_err(git_err("reading the tree"))?
            .filter(|e| e.mode().is_tree())
            .ok_or_else(|| SourceError::PathNotFound {
                path: path.to_owned(),
                commit: hex.clone(),
            })?;
        entry
            .object()
            .map_err(git_err("reading the tree"))?
            .into_tree()
    };
    let mut files = Vec::new();
    let prefix = if clean.is_empty() || clean == "." {
        String::new()
    } else {
        format!("{clean}/")
    };
    collect(&repo, start, &prefix, 0, &mut files).map_err(|e| match e {
        Collect::Git(e) => git_err("reading files")(e),
        Collect::TooLarge(path, size) => SourceError::FileTooLarge {
            path,
            size,
            limit: MAX_FILE_BYTES,
        },
    })?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let short = &hex[..12.min(hex.len())];
    let display = match (&git_ref.branch, &git_ref.tag) {
        (Some(b), _) => format!("{b}@sha1:{short}"),
        (None, Some(t)) => format!("{t}@sha1:{short}"),
        _ => format!("sha1:{short}"),
    };
    Ok(Revision {
        commit: hex,
        display,
        cached,
        files,
    })
}

enum Collect {
    Git(gix::Error),
    TooLarge(String, usize),
}

impl From<gix::Error> for Collect {
    fn from(e: gix::Error) -> Self {
        Collect::Git(e)
    }
}

fn is_manifest(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

/// Walks a tree (depth-limited) and reads manifest blobs.
fn collect(
    repo: &gix::Repository,
    tree: gix::Tree<'_>,
    prefix: &str,
    depth: usize,
    out: &mut Vec<SourceFile>,
) -> Result<(), Collect> {
    if depth > 64 {
        return Ok(());
    }
    let mut subtrees = Vec::new();
    for entry in tree.iter() {
        let entry = entry?;
        let name = entry.filename().to_string();
        let mode = entry.mode();
        if mode.is_tree() {
            subtrees.push((entry.oid().to_owned(), name));
        } else if mode.is_blob() && is_manifest(&name) {
            let path = format!("{prefix}{name}");
            let id = entry.oid().to_owned();
            let header = repo.find_header(id)?;
            let size = header.size() as usize;
            if size > MAX_FILE_BYTES {
                return Err(Collect::TooLarge(path, size));
            }
            let blob = repo.find_blob(id)?;
            out.push(SourceFile {
                path,
                data: blob.data.clone(),
            });
        }
    }
    for (id, name) in subtrees {
        let sub = repo.find_tree(id)?;
        collect(repo, sub, &format!("{prefix}{name}/"), depth + 1, out)?;
    }
    Ok(())
}

/// Reads manifest candidates from a local directory (tests, `--diff` on a
/// working copy). Same caps and filter as a fetched revision.
pub fn read_dir(root: &Path) -> Result<Vec<SourceFile>, SourceError> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| SourceError::Git {
            url: root.display().to_string(),
            step: "reading the directory",
            reason: e.to_string(),
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                stack.push((p, format!("{prefix}{name}/")));
            } else if is_manifest(&name) {
                let data = std::fs::read(&p).map_err(|e| SourceError::Git {
                    url: root.display().to_string(),
                    step: "reading a file",
                    reason: e.to_string(),
                })?;
                if data.len() > MAX_FILE_BYTES {
                    return Err(SourceError::FileTooLarge {
                        path: format!("{prefix}{name}"),
                        size: data.len(),
                        limit: MAX_FILE_BYTES,
                    });
                }
                out.push(SourceFile {
                    path: format!("{prefix}{name}"),
                    data,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_schemes() {
        assert!(check_url("https://example.invalid/r.git").is_ok());
        assert!(check_url("file:///tmp/r").is_ok());
        assert!(check_url("http://127.0.0.1:8080/r.git").is_ok());
        assert!(check_url("http://example.invalid/r.git").is_err());
        let e = check_url("ssh://git@example.invalid/r.git").expect_err("ssh refused");
        assert!(e.to_string().contains("ssh is not supported"), "{e}");
        assert!(check_url("git@example.invalid:r.git").is_err());
    }

    #[test]
    fn credentials_debug_hides_values() {
        let c = Credentials {
            username: Some("u".into()),
            password: Some(SecretString::new("PLANTED-pw-1".into())),
            bearer_token: None,
        };
        assert!(!format!("{c:?}").contains("PLANTED"));
    }
}

#[cfg(test)]
mod git_tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {:?}", out);
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    }

    #[test]
    fn file_remote_branch_tag_commit_and_wrong_ref() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(repo.join("deploy/sub")).expect("dirs");
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("deploy/a.yaml"), "kind: A\n").expect("w");
        std::fs::write(repo.join("deploy/sub/b.json"), "{}").expect("w");
        std::fs::write(repo.join("deploy/readme.md"), "x").expect("w");
        std::fs::write(repo.join("other.yaml"), "kind: O\n").expect("w");
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "one"]);
        let first = git(&repo, &["rev-parse", "HEAD"]);
        git(&repo, &["tag", "-a", "v1", "-m", "v1"]);
        std::fs::write(repo.join("deploy/c.yml"), "kind: C\n").expect("w");
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "two"]);
        let second = git(&repo, &["rev-parse", "HEAD"]);
        let url = format!("file://{}", repo.display());
        let cache = tmp.path().join("cache");
        let branch = GitRef {
            branch: Some("main".into()),
            ..Default::default()
        };
        let rev = fetch(&url, &branch, &Credentials::default(), &cache, "./deploy").expect("fetch");
        assert_eq!(rev.commit, second);
        assert!(!rev.cached);
        let paths: Vec<_> = rev.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["deploy/a.yaml", "deploy/c.yml", "deploy/sub/b.json"]
        );
        let again = fetch(&url, &branch, &Credentials::default(), &cache, "deploy").expect("fetch");
        assert!(
            again.cached,
            "second fetch of the same commit is a cache hit"
        );
        let tag = GitRef {
            tag: Some("v1".into()),
            ..Default::default()
        };
        let rev = fetch(&url, &tag, &Credentials::default(), &cache, "deploy").expect("tag");
        assert_eq!(rev.commit, first, "annotated tag peeled to its commit");
        assert_eq!(rev.files.len(), 2);
        let pinned = GitRef {
            commit: Some(first.clone()),
            ..Default::default()
        };
        let rev = fetch(&url, &pinned, &Credentials::default(), &cache, "").expect("commit");
        assert_eq!(rev.files.len(), 3);
        let wrong = GitRef {
            branch: Some("nope".into()),
            ..Default::default()
        };
        let e = fetch(&url, &wrong, &Credentials::default(), &cache, "")
            .map(|r| r.commit)
            .expect_err("wrong ref");
        assert_eq!(e.metric_label(), "RefNotFound", "{e}");
        let e = fetch(&url, &branch, &Credentials::default(), &cache, "missing").expect_err("path");
        assert_eq!(e.metric_label(), "PathNotFound", "{e}");
    }
}
