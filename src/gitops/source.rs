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
//! mirrors; never credentials over plain HTTP elsewhere), `file://`, and ssh
//! (`ssh://user@host[:port]/path` or scp-like `user@host:path`). For
//! `file://` gix itself starts `git-upload-pack` (the local transport speaks
//! the Git protocol to it); no `git` process is ever started by us.
//!
//! ssh: gix's ssh transport runs the system OpenSSH client (`ssh`), which
//! runs `git-upload-pack` on the server. We build that transport ourselves
//! (so `GIT_SSH_COMMAND`, `core.sshCommand` and `~/.ssh/config` of the
//! controller's environment play no part) with a command that pins
//! everything: `-F none` (no config files), the key from `secretRef`
//! (`identity`, Flux's name) via `-i` with `IdentitiesOnly=yes` and no
//! agent, the `known_hosts` from the same Secret as the only trusted host
//! keys (`StrictHostKeyChecking=yes`, global file disabled — an unknown or
//! changed host key is always refused), and `BatchMode=yes` (never a
//! prompt). Key and known_hosts are written to a fresh 0700 directory under
//! the cache root (files 0600; the key is overwritten with zeros and the
//! directory removed when the fetch ends), because OpenSSH only reads keys
//! from files. ssh's stderr goes to a file in that directory, so the error
//! can name the cause (host key, authentication, connection) without
//! anything reaching the controller's own stderr. In this module key bytes live
//! only in [`SecretBytes`] and that file; they never appear in a log or error.

use std::collections::BTreeMap;
use std::io::Write;
use std::num::NonZeroU32;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::protocol::transport::client::blocking_io::Transport;
use k8s_openapi::ByteString;
use sha2::{Digest, Sha256};

use super::spec::GitRef;
use crate::secret::{ExposeSecret, SecretBytes, SecretString};

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

/// ssh credentials from the GitSync's `secretRef`, under Flux's key
/// names: `identity` (an OpenSSH or PEM private key without passphrase) and
/// `known_hosts` (OpenSSH format; for a non-default port the host is
/// written `[host]:port`). Both are required for an ssh URL: host keys are
/// always checked, never learned.
pub struct SshCredentials {
    identity: SecretBytes,
    known_hosts: String,
}

impl std::fmt::Debug for SshCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshCredentials")
            .field("identity", &"<redacted>")
            .field("known_hosts_lines", &self.known_hosts.lines().count())
            .finish()
    }
}

impl SshCredentials {
    /// Checks and wraps the two values. `url` only names the source in
    /// errors; no error echoes a value.
    pub fn new(url: &str, identity: SecretBytes, known_hosts: &str) -> Result<Self, SourceError> {
        let bad = |reason: &str| SourceError::BadCredentials {
            url: redact_url(url),
            reason: reason.to_owned(),
        };
        let key = identity.expose_secret();
        let looks_like_key = key.windows(11).any(|w| w == b"PRIVATE KEY");
        if !looks_like_key {
            return Err(bad(
                "secretRef `identity` is not a PEM/OpenSSH private key (-----BEGIN ... PRIVATE KEY-----)",
            ));
        }
        if key.windows(9).any(|w| w == b"ENCRYPTED") {
            return Err(bad(
                "secretRef `identity` is passphrase-protected; ssh runs non-interactively, use a key without passphrase",
            ));
        }
        let entries = known_hosts
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        if entries == 0 {
            return Err(bad(
                "secretRef `known_hosts` is empty: ssh host keys are always verified (add the server's keys, e.g. from ssh-keyscan checked out of band)",
            ));
        }
        for line in known_hosts.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = line.split_whitespace().count();
            let marker = line.starts_with('@');
            if fields < 3 || (marker && fields < 4) {
                return Err(bad(
                    "secretRef `known_hosts` has a line that is not `<hosts> <key type> <base64 key>`",
                ));
            }
        }
        Ok(Self {
            identity,
            known_hosts: known_hosts.to_owned(),
        })
    }

    /// Reads `identity` and `known_hosts` from a Secret's `data`. `None`
    /// when the Secret has no `identity` (an https Secret).
    pub fn from_secret_data(
        url: &str,
        data: &BTreeMap<String, ByteString>,
    ) -> Result<Option<Self>, SourceError> {
        let Some(identity) = data.get("identity") else {
            return Ok(None);
        };
        let known_hosts = data
            .get("known_hosts")
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default();
        Self::new(url, SecretBytes::from(identity.0.as_slice()), &known_hosts).map(Some)
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
    /// The ssh server's host key is not in `known_hosts` (unknown host or
    /// changed key). Never accepted: a changed key may be an attack.
    #[error(
        "{url}: ssh host key verification failed (the server's key does not match secretRef known_hosts): {detail}"
    )]
    HostKeyRejected {
        /// The URL.
        url: String,
        /// ssh's own message (fingerprints and file names only).
        detail: String,
    },
    /// The server refused the key from `secretRef`.
    #[error("{url}: ssh authentication failed (the server refused secretRef identity): {detail}")]
    AuthFailed {
        /// The URL.
        url: String,
        /// ssh's own message.
        detail: String,
    },
    /// `secretRef` lacks what the URL's transport needs, or holds an
    /// unusable value (described, never echoed).
    #[error("{url}: {reason}")]
    BadCredentials {
        /// The URL.
        url: String,
        /// What is wrong.
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
            Self::HostKeyRejected { .. } => "HostKeyRejected",
            Self::AuthFailed { .. } => "AuthenticationFailed",
            Self::BadCredentials { .. } => "CredentialsInvalid",
        }
    }

    /// Whether retrying may help (network; a fix in a Secret or on the
    /// server) or a spec/commit change is needed.
    pub fn transient(&self) -> bool {
        matches!(
            self,
            Self::Git { .. }
                | Self::HostKeyRejected { .. }
                | Self::AuthFailed { .. }
                | Self::BadCredentials { .. }
        )
    }
}

/// Largest manifest file read from a revision (as Flux).
pub const MAX_FILE_BYTES: usize = 5 * 1024 * 1024;

/// Checks the URL scheme before any network or process activity.
pub fn check_url(url: &str) -> Result<(), SourceError> {
    let bad = |reason: &str| SourceError::UnsupportedUrl {
        url: redact_url(url),
        reason: reason.to_owned(),
    };
    if url.starts_with("https://") || url.starts_with("file://") {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("http://") {
        // The host is after any `user:password@` and before the port.
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if host_port.starts_with('[') {
            host_port.split_inclusive(']').next().unwrap_or("")
        } else {
            host_port.split(':').next().unwrap_or("")
        };
        return if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            Ok(())
        } else {
            Err(bad(
                "plain http is allowed to loopback hosts only; use https",
            ))
        };
    }
    if is_ssh(url) {
        let rest = url.strip_prefix("ssh://").unwrap_or(url);
        let authority = rest.split('/').next().unwrap_or("");
        let userinfo = authority.rsplit_once('@').map(|(u, _)| u).unwrap_or("");
        if userinfo.contains(':') {
            return Err(SourceError::UnsupportedUrl {
                url: redact_url(url),
                reason: "ssh URLs carry no password; the key comes from secretRef `identity`"
                    .to_owned(),
            });
        }
        return Ok(());
    }
    Err(bad(
        "only https://, ssh://, scp-like user@host:path, file:// (and http:// to loopback) URLs are supported",
    ))
}

/// `ssh://…` or scp-like `user@host:path` (no scheme, a colon before the
/// first slash).
pub fn is_ssh(url: &str) -> bool {
    if url.starts_with("ssh://") {
        return true;
    }
    if url.contains("://") {
        return false;
    }
    match (url.find(':'), url.find('/')) {
        (Some(c), Some(s)) => c < s && c > 0,
        (Some(c), None) => c > 0,
        _ => false,
    }
}

/// The URL with any `user:password@` password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    // Only a real scheme (letters, digits, `+-.`) counts: in `u:pw@h://x`
    // the part before `://` holds the password.
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r))
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            (Some(s), r)
        }
        _ => (None, url),
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{name}:***@{host}")
        }
        _ => authority.to_owned(),
    };
    match scheme {
        Some(s) => format!("{s}://{authority}{path}"),
        None => format!("{authority}{path}"),
    }
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
/// returning the manifest candidates under `path`. For https, http and
/// file URLs; an ssh URL needs [`fetch_with`] and [`SshCredentials`].
pub fn fetch(
    url: &str,
    git_ref: &GitRef,
    credentials: &Credentials,
    cache_root: &Path,
    path: &str,
) -> Result<Revision, SourceError> {
    fetch_with(url, git_ref, credentials, None, cache_root, path)
}

/// [`fetch`] with ssh credentials for an ssh URL (required there, ignored
/// for other schemes).
pub fn fetch_with(
    url: &str,
    git_ref: &GitRef,
    credentials: &Credentials,
    ssh: Option<&SshCredentials>,
    cache_root: &Path,
    path: &str,
) -> Result<Revision, SourceError> {
    check_url(url)?;
    let ssh_session = if is_ssh(url) {
        let Some(ssh) = ssh else {
            return Err(SourceError::BadCredentials {
                url: redact_url(url),
                reason: "an ssh source needs source.secretRef with `identity` (private key) and `known_hosts`".to_owned(),
            });
        };
        Some(SshSession::new(url, ssh, cache_root)?)
    } else {
        None
    };
    let git_err = |step: &'static str| {
        let url = redact_url(url);
        move |e: gix::Error| SourceError::Git {
            url: url.clone(),
            step,
            reason: chain(&e),
        }
    };
    let dir = cache_dir_for(cache_root, url);
    let repo = if dir.join("HEAD").exists() {
        gix::open(&dir).map_err(|e| SourceError::Git {
            url: redact_url(url),
            step: "opening the cache",
            reason: e.to_string(),
        })?
    } else {
        std::fs::create_dir_all(&dir).map_err(|e| SourceError::Git {
            url: redact_url(url),
            step: "creating the cache",
            reason: e.to_string(),
        })?;
        gix::init_bare(&dir).map_err(|e| SourceError::Git {
            url: redact_url(url),
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
    let mut connection = match &ssh_session {
        None => remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(git_err("connecting"))?,
        Some(session) => {
            let (gurl, version) = remote
                .sanitized_url_and_version(gix::remote::Direction::Fetch)
                .map_err(git_err("parsing the URL"))?;
            let transport = gix::protocol::transport::client::blocking_io::ssh::connect(
                gurl,
                version,
                session.connect_options(),
                false,
            )
            .map_err(|e| SourceError::Git {
                url: redact_url(url),
                step: "preparing ssh",
                reason: chain(&e),
            })?;
            let boxed: Box<dyn Transport + Send> = Box::new(transport);
            remote.to_connection_with_transport(boxed)
        }
    };
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
        .map_err(|e| {
            let err = git_err("listing remote refs")(e);
            match &ssh_session {
                Some(session) => session.classify(err),
                None => err,
            }
        })?;
    let commit_id = match &git_ref.commit {
        Some(c) => gix::ObjectId::from_hex(c.as_bytes()).map_err(|e| SourceError::Git {
            url: redact_url(url),
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
                    url: redact_url(url),
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
                    url: redact_url(url),
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
                        url: redact_url(url),
                        what: format!("{what} ({e})"),
                    }
                } else {
                    let err = SourceError::Git {
                        url: redact_url(url),
                        step: "fetching",
                        reason: e.to_string(),
                    };
                    match &ssh_session {
                        Some(session) => session.classify(err),
                        None => err,
                    }
                }
            })?;
    } else {
        drop(prepare);
    }
    // Re-open so objects from the new pack are visible.
    let repo = gix::open(&dir).map_err(|e| SourceError::Git {
        url: redact_url(url),
        step: "opening the cache",
        reason: e.to_string(),
    })?;
    let commit = repo
        .find_commit(commit_id)
        .map_err(|_| SourceError::RefNotFound {
            url: redact_url(url),
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

/// The private directory and ssh command of one ssh fetch. Dropping it
/// overwrites the key file with zeros and removes the directory.
struct SshSession {
    url: String,
    dir: PathBuf,
    command: String,
    key_len: usize,
}

/// Characters allowed in the private directory's path: it is spliced into
/// a shell command and into ssh `-o` values, which split on whitespace.
fn shell_safe(p: &str) -> bool {
    p.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+,@".contains(&b))
}

impl SshSession {
    fn new(url: &str, ssh: &SshCredentials, cache_root: &Path) -> Result<Self, SourceError> {
        let fail = |step: &'static str, e: std::io::Error| SourceError::Git {
            url: redact_url(url),
            step,
            reason: e.to_string(),
        };
        std::fs::create_dir_all(cache_root).map_err(|e| fail("creating the cache", e))?;
        let root = std::path::absolute(cache_root).map_err(|e| fail("creating the cache", e))?;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce)
            .map_err(|e| fail("preparing ssh", std::io::Error::other(e.to_string())))?;
        let dir = root.join(format!(".ssh-{}", crate::gate::hex(&nonce)));
        let display = dir.display().to_string();
        if !shell_safe(&display) {
            return Err(SourceError::Git {
                url: redact_url(url),
                step: "preparing ssh",
                reason: format!(
                    "the cache directory path {:?} has characters that cannot be passed to ssh safely; use a plain path",
                    root.display()
                ),
            });
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| fail("preparing ssh", e))?;
        // From here on Drop cleans up.
        let key = ssh.identity.expose_secret();
        let mut session = SshSession {
            url: redact_url(url),
            dir,
            command: String::new(),
            key_len: key.len() + 1,
        };
        let write = |name: &str, parts: &[&[u8]]| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(session.dir.join(name))?;
            for p in parts {
                f.write_all(p)?;
            }
            f.sync_all()
        };
        // OpenSSH rejects a key without the final newline.
        write("identity", &[key, b"\n"]).map_err(|e| fail("writing the ssh key", e))?;
        write("known_hosts", &[ssh.known_hosts.as_bytes(), b"\n"])
            .map_err(|e| fail("writing known_hosts", e))?;
        let d = session.dir.display().to_string();
        session.command = format!(
            "ssh -F none -i {d}/identity -o IdentitiesOnly=yes -o IdentityAgent=none \
             -o UserKnownHostsFile={d}/known_hosts -o GlobalKnownHostsFile=none \
             -o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o BatchMode=yes \
             -o ConnectTimeout=30 -o LogLevel=ERROR 2>>{d}/stderr"
        );
        Ok(session)
    }

    /// gix's options: our command (run through `sh`, which only applies
    /// the stderr redirection), OpenSSH argument conventions.
    fn connect_options(
        &self,
    ) -> gix::protocol::transport::client::blocking_io::ssh::connect::Options {
        gix::protocol::transport::client::blocking_io::ssh::connect::Options {
            command: Some(self.command.clone().into()),
            disallow_shell: false,
            kind: Some(gix::protocol::transport::client::blocking_io::ssh::ProgramKind::Ssh),
        }
    }

    /// What ssh (and the remote side) wrote to stderr, at most 20 lines.
    fn stderr(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '@'))
            .collect();
        lines[lines.len().saturating_sub(20)..].join(" / ")
    }

    /// Turns a generic transport error into the ssh cause when stderr
    /// names one.
    fn classify(&self, err: SourceError) -> SourceError {
        let stderr = self.stderr();
        let lower = stderr.to_ascii_lowercase();
        if lower.contains("host key verification failed")
            || lower.contains("remote host identification has changed")
            || lower.contains("host key is known for")
        {
            // ssh's banner is long; keep the verdict and the fingerprint
            // the server presented (the temp known_hosts path means nothing
            // to the reader).
            let mut detail: Vec<String> = stderr
                .split(" / ")
                .filter(|l| {
                    let l = l.to_ascii_lowercase();
                    l.contains("host key")
                        && !l.contains("known_hosts")
                        && !l.contains("add correct")
                        && !l.contains("possible")
                })
                .map(str::to_owned)
                .collect();
            if let Some(fp) = stderr.split(" / ").find(|l| l.starts_with("SHA256:")) {
                detail.insert(0, format!("server key {}", fp.trim_end_matches('.')));
            }
            return SourceError::HostKeyRejected {
                url: self.url.clone(),
                detail: detail.join("; "),
            };
        }
        if lower.contains("permission denied") {
            return SourceError::AuthFailed {
                url: self.url.clone(),
                detail: stderr,
            };
        }
        if stderr.is_empty() {
            return err;
        }
        match err {
            SourceError::Git { url, step, reason } => SourceError::Git {
                url,
                step,
                reason: format!("{reason}; ssh said: {stderr}"),
            },
            other => other,
        }
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        let key = self.dir.join("identity");
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&key) {
            let zeros = vec![0u8; self.key_len];
            let _ = f.write_all(&zeros).and_then(|()| f.sync_all());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An error and its causes, one line (gix's top-level messages alone are
/// often too generic, e.g. "Transport handshake failed").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    let mut depth = 0;
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
        depth += 1;
        if depth > 8 {
            break;
        }
    }
    out
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
        assert!(check_url("http://127.0.0.1:x@example.invalid/r.git").is_err());
        assert!(check_url("http://[::1]:8080/r.git").is_ok());
        assert!(check_url("ssh://git@example.invalid/r.git").is_ok());
        assert!(check_url("ssh://git@example.invalid:2222/r.git").is_ok());
        assert!(check_url("git@example.invalid:org/r.git").is_ok());
        let e = check_url("ssh://git:PLANTED-pw@example.invalid/r.git").expect_err("password");
        assert!(!e.to_string().contains("PLANTED"), "{e}");
        let e = check_url("git:PLANTED-pw@example.invalid:org/r.git").expect_err("password");
        assert!(!e.to_string().contains("PLANTED"), "{e}");
        assert!(check_url("ftp://example.invalid/r").is_err());
        assert!(is_ssh("git@github.com:org/repo.git"));
        assert!(!is_ssh("/srv/repo"));
        assert!(!is_ssh("./a:b"));
        assert_eq!(
            redact_url("https://u:secret@h.example/x"),
            "https://u:***@h.example/x"
        );
    }

    #[test]
    fn ssh_credentials_are_checked_and_never_echoed() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nPLANTED-key-body\n-----END OPENSSH PRIVATE KEY-----";
        let url = "ssh://git@h.example/r";
        let ok = SshCredentials::new(
            url,
            SecretBytes::from(key.as_bytes()),
            "h.example ssh-ed25519 AAAA",
        )
        .expect("valid");
        assert!(!format!("{ok:?}").contains("PLANTED"));
        for (k, kh) in [
            (key, ""),
            (key, "garbage"),
            ("PLANTED-not-a-key", "h ssh-ed25519 AAAA"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nPLANTED\n-----END RSA PRIVATE KEY-----",
                "h ssh-rsa AAAA",
            ),
        ] {
            let e =
                SshCredentials::new(url, SecretBytes::from(k.as_bytes()), kh).expect_err("refused");
            assert_eq!(e.metric_label(), "CredentialsInvalid");
            assert!(!e.to_string().contains("PLANTED"), "{e}");
        }
        let tmp = std::env::temp_dir();
        let e =
            fetch(url, &GitRef::default(), &Credentials::default(), &tmp, "").expect_err("no key");
        assert!(e.to_string().contains("identity"), "{e}");
    }

    proptest::proptest! {
        /// Whatever the URL, checking it never panics, and a password in
        /// it never reaches the message.
        #[test]
        fn url_messages_never_carry_the_password(
            scheme in proptest::sample::select(vec!["ssh://", "https://", "http://", ""]),
            user in "[a-z]{1,8}",
            host in "[a-z0-9.]{1,12}",
            path in "[a-zA-Z0-9/._:-]{0,20}",
        ) {
            let pw = "PLANTEDpw9";
            let sep = if scheme.is_empty() { ":" } else { "/" };
            let url = format!("{scheme}{user}:{pw}@{host}{sep}{path}");
            proptest::prop_assert!(!redact_url(&url).contains(pw));
            if let Err(e) = check_url(&url) {
                proptest::prop_assert!(!e.to_string().contains(pw), "{}", e);
            }
            let _ = is_ssh(&path);
        }
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
