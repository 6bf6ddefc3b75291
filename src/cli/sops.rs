//! `sealgate encrypt | decrypt | edit | updatekeys | rotate | filestatus`.
//!
//! Design note: a thin shell over `crate::sops`. This layer decides where
//! keys come from (flags, environment, `.sops.yaml`, the sops identity
//! locations), reads and writes files, and maps library errors onto exit
//! codes: integrity refusals (MAC, tampered value) exit 1, everything the
//! user can fix in the input exits 2. Output is written only after the whole
//! operation succeeded; `--in-place` replaces the file atomically (temp file
//! in the same directory, fsync, rename), so a failure never leaves partial
//! plaintext on stdout or on disk.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args;

use super::{ExitStatus, Failure};
use crate::providers::sops_keys::{KmsKeys, TransitKeys};
use crate::secret::{ExposeSecret, SecretBytes};
use crate::sops::config::{self, CreationRule};
use crate::sops::{
    self as engine, AgeIdentities, EncryptOptions, ErrorClass, Format, Keyring, Recipient,
    Selector, SopsError,
};

/// Turns a library error into a tagged CLI failure with file context.
fn fail(e: SopsError, file: &str) -> anyhow::Error {
    let status = match e.exit_class() {
        ErrorClass::Refusal => ExitStatus::Findings,
        ErrorClass::Input => ExitStatus::UsageOrInput,
        ErrorClass::Unavailable => ExitStatus::Unavailable,
    };
    Failure {
        status,
        source: anyhow::Error::new(e).context(file.to_string()),
    }
    .into()
}

/// Options shared by commands that read an existing file.
#[derive(Debug, Args, Clone)]
pub struct InputOpts {
    /// Input format: yaml, json, dotenv, ini, binary (default: from the
    /// file extension; anything unknown is binary, as in sops).
    #[arg(long, value_name = "TYPE")]
    input_type: Option<String>,
    /// Output format (default: same as the input).
    #[arg(long, value_name = "TYPE")]
    output_type: Option<String>,
}

/// Where decryption keys come from.
#[derive(Debug, Args, Clone)]
pub struct IdentityOpts {
    /// age identity file to try (repeatable), in addition to SOPS_AGE_KEY,
    /// SOPS_AGE_KEY_FILE and ~/.config/sops/age/keys.txt.
    #[arg(long = "identity", value_name = "FILE")]
    identities: Vec<PathBuf>,
}

impl IdentityOpts {
    fn keyring(&self) -> anyhow::Result<Keyring> {
        let ids = AgeIdentities::discover(&self.identities).map_err(|e| fail(e, "identities"))?;
        tracing::debug!(count = ids.len(), sources = ?ids.sources(), "age identities loaded");
        Ok(with_cloud_keys(Keyring::age(ids)))
    }
}

/// Adds the Vault Transit and AWS KMS backends (credentials from the
/// environment, as sops takes them).
fn with_cloud_keys(ring: Keyring) -> Keyring {
    ring.with(Box::new(TransitKeys::from_env()))
        .with(Box::new(KmsKeys::from_env()))
}

/// Encryption-rule flags (override `.sops.yaml`).
#[derive(Debug, Args, Clone, Default)]
pub struct RuleOpts {
    /// Encrypt only values under keys matching this regex.
    #[arg(long, value_name = "REGEX")]
    encrypted_regex: Option<String>,
    /// Leave values under keys matching this regex in clear.
    #[arg(long, value_name = "REGEX")]
    unencrypted_regex: Option<String>,
    /// Encrypt only values under keys ending with this suffix.
    #[arg(long, value_name = "SUFFIX")]
    encrypted_suffix: Option<String>,
    /// Leave values under keys ending with this suffix in clear (default `_unencrypted`).
    #[arg(long, value_name = "SUFFIX")]
    unencrypted_suffix: Option<String>,
    /// Encrypt only values preceded by a comment matching this regex.
    #[arg(long, value_name = "REGEX")]
    encrypted_comment_regex: Option<String>,
    /// Leave values preceded by a comment matching this regex in clear.
    #[arg(long, value_name = "REGEX")]
    unencrypted_comment_regex: Option<String>,
    /// Only encrypted values are covered by the MAC (sops 3.9+).
    #[arg(long)]
    mac_only_encrypted: bool,
}

impl RuleOpts {
    fn selector(&self) -> Result<Option<Selector>, SopsError> {
        let fields = [
            ("unencrypted_suffix", self.unencrypted_suffix.as_deref()),
            ("encrypted_suffix", self.encrypted_suffix.as_deref()),
            ("unencrypted_regex", self.unencrypted_regex.as_deref()),
            ("encrypted_regex", self.encrypted_regex.as_deref()),
            (
                "unencrypted_comment_regex",
                self.unencrypted_comment_regex.as_deref(),
            ),
            (
                "encrypted_comment_regex",
                self.encrypted_comment_regex.as_deref(),
            ),
        ];
        if fields.iter().all(|(_, v)| v.is_none()) {
            return Ok(None);
        }
        Selector::from_options(&fields).map(Some)
    }
}

/// Arguments of `sealgate encrypt`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sealgate encrypt --age age1... secrets.yaml > secrets.enc.yaml
  sealgate encrypt -i k8s/db-secret.yaml          # recipients from .sops.yaml
  sealgate encrypt --encrypted-regex '^(data|stringData)$' -i secret.yaml
  cat app.env | sealgate encrypt --input-type dotenv --age age1... -")]
pub struct EncryptArgs {
    /// File to encrypt (`-` or absent: stdin).
    file: Option<PathBuf>,
    /// age recipients (comma-separated or repeated); replaces the
    /// .sops.yaml keys. Also read from SOPS_AGE_RECIPIENTS.
    #[arg(
        long,
        value_name = "RECIPIENT",
        env = "SOPS_AGE_RECIPIENTS",
        value_delimiter = ','
    )]
    age: Vec<String>,
    /// Vault/OpenBao Transit keys as URIs
    /// (`https://vault:8200/v1/transit/keys/NAME`, comma-separated or
    /// repeated); the token comes from VAULT_TOKEN. Also SOPS_VAULT_URIS.
    #[arg(
        long = "hc-vault-transit",
        value_name = "URI",
        env = "SOPS_VAULT_URIS",
        value_delimiter = ','
    )]
    hc_vault_transit: Vec<String>,
    /// AWS KMS key ARNs (comma-separated or repeated); credentials from the
    /// AWS default chain. Also SOPS_KMS_ARN.
    #[arg(long, value_name = "ARN", env = "SOPS_KMS_ARN", value_delimiter = ',')]
    kms: Vec<String>,
    /// Shamir threshold when .sops.yaml defines several key groups.
    #[arg(long = "shamir-secret-sharing-threshold", value_name = "N")]
    shamir_threshold: Option<usize>,
    /// .sops.yaml to use instead of searching from the current directory.
    #[arg(long, value_name = "FILE", env = "SOPS_CONFIG")]
    config: Option<PathBuf>,
    /// Path used for creation-rule matching and format detection when
    /// reading stdin.
    #[arg(long, value_name = "PATH")]
    filename_override: Option<PathBuf>,
    /// Replace the file with its encrypted form (atomic).
    #[arg(short = 'i', long)]
    in_place: bool,
    /// Write to this file (atomic) instead of stdout.
    #[arg(long, value_name = "FILE", conflicts_with = "in_place")]
    output: Option<PathBuf>,
    #[command(flatten)]
    io: InputOpts,
    #[command(flatten)]
    rules: RuleOpts,
}

/// Arguments of `sealgate decrypt`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sealgate decrypt secrets.enc.yaml
  SOPS_AGE_KEY_FILE=key.txt sealgate decrypt -i app.env
  sealgate decrypt --extract '[\"db\"][\"password\"]' secrets.yaml
  sealgate decrypt --input-type json config.json.enc

Exit codes: 1 when the MAC or a value fails verification (nothing is printed),
2 when no key opens the file or the input is malformed.")]
pub struct DecryptArgs {
    /// File to decrypt (`-` or absent: stdin).
    file: Option<PathBuf>,
    /// Replace the file with its plaintext (atomic).
    #[arg(short = 'i', long)]
    in_place: bool,
    /// Write to this file (atomic, mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE", conflicts_with = "in_place")]
    output: Option<PathBuf>,
    /// Print only this value, e.g. '["a"]["b"][0]'.
    #[arg(long, value_name = "PATH")]
    extract: Option<String>,
    /// Skip MAC verification (DANGEROUS: output is not integrity-checked).
    #[arg(long)]
    ignore_mac: bool,
    /// Path used for format detection when reading stdin.
    #[arg(long, value_name = "PATH")]
    filename_override: Option<PathBuf>,
    #[command(flatten)]
    io: InputOpts,
    #[command(flatten)]
    ids: IdentityOpts,
}

/// Arguments of `sealgate edit`.
#[derive(Debug, Args)]
#[command(
    after_help = "Opens the decrypted file in $SOPS_EDITOR or $EDITOR (default vi) from a
private 0600 temp file, re-encrypts it with the same data key when you save,
and wipes the temp file. A new file is created with recipients from
.sops.yaml (or --age).

Examples:
  sealgate edit secrets.yaml
  EDITOR='code --wait' sealgate edit k8s/db-secret.yaml"
)]
pub struct EditArgs {
    /// File to edit (created when missing).
    file: PathBuf,
    /// age recipients for a new file.
    #[arg(
        long,
        value_name = "RECIPIENT",
        env = "SOPS_AGE_RECIPIENTS",
        value_delimiter = ','
    )]
    age: Vec<String>,
    /// .sops.yaml for a new file.
    #[arg(long, value_name = "FILE", env = "SOPS_CONFIG")]
    config: Option<PathBuf>,
    /// Format (default: from the extension).
    #[arg(long, value_name = "TYPE")]
    input_type: Option<String>,
    /// Skip MAC verification of the existing file (DANGEROUS).
    #[arg(long)]
    ignore_mac: bool,
    #[command(flatten)]
    ids: IdentityOpts,
}

/// Arguments of `sealgate updatekeys`.
#[derive(Debug, Args)]
#[command(
    after_help = "Re-wraps the file's data key for the recipients the matching .sops.yaml
creation rule lists now. Values and the MAC are not touched.

Examples:
  sealgate updatekeys -y k8s/db-secret.yaml
  sealgate updatekeys --config ops/.sops.yaml secrets.yaml"
)]
pub struct UpdateKeysArgs {
    /// Files to update.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    yes: bool,
    /// .sops.yaml to use.
    #[arg(long, value_name = "FILE", env = "SOPS_CONFIG")]
    config: Option<PathBuf>,
    /// Format (default: from the extension).
    #[arg(long, value_name = "TYPE")]
    input_type: Option<String>,
    #[command(flatten)]
    ids: IdentityOpts,
}

/// Arguments of `sealgate rotate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Draws a new data key, re-encrypts every value and re-wraps the key for the
same recipients. Needs a key that opens the file.

Examples:
  sealgate rotate -i secrets.yaml"
)]
pub struct RotateArgs {
    /// File to rotate.
    file: PathBuf,
    /// Replace the file (otherwise the result goes to stdout).
    #[arg(short = 'i', long)]
    in_place: bool,
    /// Format (default: from the extension).
    #[arg(long, value_name = "TYPE")]
    input_type: Option<String>,
    #[command(flatten)]
    ids: IdentityOpts,
}

/// Arguments of `sealgate filestatus`.
#[derive(Debug, Args)]
#[command(
    after_help = "Prints {\"encrypted\":true} or {\"encrypted\":false} like `sops filestatus`.

Example:
  sealgate filestatus secrets.yaml"
)]
pub struct FileStatusArgs {
    /// File to inspect.
    file: PathBuf,
    /// Format (default: from the extension).
    #[arg(long, value_name = "TYPE")]
    input_type: Option<String>,
}

fn format_arg(name: Option<&str>, path: Option<&Path>) -> anyhow::Result<Format> {
    match name {
        Some(n) => Format::from_name(n)
            .ok_or_else(|| anyhow!("unknown format {n:?}: use yaml, json, dotenv, ini or binary")),
        None => Ok(path.map(Format::from_path).unwrap_or(Format::Binary)),
    }
}

fn read_input(file: Option<&Path>) -> anyhow::Result<(Vec<u8>, String)> {
    match file {
        None => read_stdin(),
        Some(p) if p == Path::new("-") => read_stdin(),
        Some(p) => Ok((
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
            p.display().to_string(),
        )),
    }
}

fn read_stdin() -> anyhow::Result<(Vec<u8>, String)> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .context("cannot read stdin")?;
    Ok((buf, "<stdin>".into()))
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes `data` to `path` atomically: temp file in the same directory
/// (mode `mode`, or the existing file's mode), fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.sealgate-{}", random_suffix()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(mode);
        opts.mode(mode);
    }
    let result = (|| -> std::io::Result<()> {
        let mut f = opts.open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

fn write_stdout(data: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(data)
        .and_then(|_| out.flush())
        .context("cannot write to stdout")
}

/// Recipients for a new encryption: flags first, then `.sops.yaml`.
fn creation_rule(
    age: &[String],
    others: &[(&str, &[String])],
    config: Option<&Path>,
    target: &Path,
) -> anyhow::Result<CreationRule> {
    let mut flagged: Vec<Recipient> = age
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(Recipient::age)
        .collect();
    for (kind, ids) in others {
        flagged.extend(
            ids.iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|id| Recipient {
                    kind: (*kind).to_owned(),
                    id: id.to_owned(),
                }),
        );
    }
    let age = flagged;
    let cfg = match config {
        Some(c) => Some(c.to_path_buf()),
        None => std::env::current_dir()
            .ok()
            .and_then(|d| config::find_config(&d)),
    };
    let mut rule = match &cfg {
        Some(c) if age.is_empty() => {
            config::rule_for(c, target).map_err(|e| fail(e, &c.display().to_string()))?
        }
        Some(c) => config::rule_for(c, target).unwrap_or_default(),
        None => CreationRule::default(),
    };
    if !age.is_empty() {
        rule.groups = vec![age];
    }
    if rule.groups.iter().all(|g| g.is_empty()) {
        return Err(fail(SopsError::NoRecipients, &target.display().to_string()));
    }
    Ok(rule)
}

/// `sealgate encrypt`.
pub fn encrypt(args: &EncryptArgs) -> anyhow::Result<ExitStatus> {
    let (input, name) = read_input(args.file.as_deref())?;
    let target = args
        .filename_override
        .clone()
        .or_else(|| args.file.clone().filter(|p| p != Path::new("-")))
        .unwrap_or_else(|| PathBuf::from("stdin"));
    let format = format_arg(args.io.input_type.as_deref(), Some(&target))?;
    let output = format_arg(args.io.output_type.as_deref(), None).map(|f| {
        if args.io.output_type.is_some() {
            f
        } else {
            format
        }
    })?;
    let others: [(&str, &[String]); 2] = [("hc_vault", &args.hc_vault_transit), ("kms", &args.kms)];
    let rule = creation_rule(&args.age, &others, args.config.as_deref(), &target)?;
    let selector = match args.rules.selector().map_err(|e| fail(e, &name))? {
        Some(s) => Some(s),
        None => rule.selector,
    };
    let opts = EncryptOptions {
        groups: rule.groups,
        shamir_threshold: args.shamir_threshold.or(rule.shamir_threshold),
        selector,
        mac_only_encrypted: args.rules.mac_only_encrypted || rule.mac_only_encrypted,
        binary: false,
    };
    let out = engine::encrypt(
        &input,
        format,
        output,
        &opts,
        &with_cloud_keys(Keyring::new()),
    )
    .map_err(|e| fail(e, &name))?;
    emit(
        &out,
        args.in_place,
        args.output.as_deref(),
        args.file.as_deref(),
        0o644,
    )
}

fn emit(
    out: &[u8],
    in_place: bool,
    output: Option<&Path>,
    file: Option<&Path>,
    mode: u32,
) -> anyhow::Result<ExitStatus> {
    if in_place {
        let f = file
            .filter(|p| *p != Path::new("-"))
            .ok_or_else(|| anyhow!("--in-place needs a file, not stdin"))?;
        write_atomic(f, out, mode)?;
    } else if let Some(o) = output {
        write_atomic(o, out, mode)?;
    } else {
        write_stdout(out)?;
    }
    Ok(ExitStatus::Success)
}

/// `sealgate decrypt`.
pub fn decrypt(args: &DecryptArgs) -> anyhow::Result<ExitStatus> {
    let (input, name) = read_input(args.file.as_deref())?;
    let path = args
        .filename_override
        .clone()
        .or_else(|| args.file.clone().filter(|p| p != Path::new("-")));
    let format = format_arg(args.io.input_type.as_deref(), path.as_deref())?;
    let output = match &args.io.output_type {
        Some(o) => format_arg(Some(o), None)?,
        None => format,
    };
    let keyring = args.ids.keyring()?;
    let d = engine::decrypt_tree(&input, format, &keyring, args.ignore_mac)
        .map_err(|e| fail(e, &name))?;
    warn_unverified(&d, &name);
    let plain = SecretBytes::new(match &args.extract {
        Some(expr) => {
            let v = engine::extract(&d.branches, expr).map_err(|e| fail(e, &name))?;
            engine::formats::emit_fragment(output, v).map_err(|e| fail(e, &name))?
        }
        None => engine::formats::emit_plain(output, &d.branches).map_err(|e| fail(e, &name))?,
    });
    emit(
        plain.expose_secret(),
        args.in_place,
        args.output.as_deref(),
        args.file.as_deref(),
        0o600,
    )
}

fn warn_unverified(d: &engine::Decrypted, name: &str) {
    if !d.mac_verified {
        eprintln!(
            "warning: {name}: --ignore-mac: the MAC does not match; output is NOT integrity-checked"
        );
    }
}

/// `sealgate filestatus`.
pub fn filestatus(args: &FileStatusArgs) -> anyhow::Result<ExitStatus> {
    let (input, _) = read_input(Some(&args.file))?;
    let format = format_arg(args.input_type.as_deref(), Some(&args.file))?;
    let enc = engine::is_encrypted(&input, format);
    println!("{{\"encrypted\":{enc}}}");
    Ok(ExitStatus::Success)
}

/// `sealgate rotate`.
pub fn rotate(args: &RotateArgs) -> anyhow::Result<ExitStatus> {
    let (input, name) = read_input(Some(&args.file))?;
    let format = format_arg(args.input_type.as_deref(), Some(&args.file))?;
    let out = engine::rotate(&input, format, &args.ids.keyring()?).map_err(|e| fail(e, &name))?;
    emit(&out, args.in_place, None, Some(&args.file), 0o644)
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(anyhow!(
            "{question}: stdin is not a terminal; pass --yes to confirm"
        ));
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// `sealgate updatekeys`.
pub fn updatekeys(args: &UpdateKeysArgs) -> anyhow::Result<ExitStatus> {
    let keyring = args.ids.keyring()?;
    for file in &args.files {
        let name = file.display().to_string();
        let input = std::fs::read(file).with_context(|| format!("cannot read {name}"))?;
        let format = format_arg(args.input_type.as_deref(), Some(file))?;
        let cfg = match &args.config {
            Some(c) => c.clone(),
            None => std::env::current_dir()
                .ok()
                .and_then(|d| config::find_config(&d))
                .ok_or_else(|| {
                    anyhow!("no .sops.yaml found from the current directory; pass --config")
                })?,
        };
        let rule = config::rule_for(&cfg, file).map_err(|e| fail(e, &cfg.display().to_string()))?;
        let (out, changed) = engine::update_keys(
            &input,
            format,
            &keyring,
            &rule.groups,
            rule.shamir_threshold,
        )
        .map_err(|e| fail(e, &name))?;
        if !changed {
            eprintln!("{name}: already up to date");
            continue;
        }
        let summary: Vec<String> = rule
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                format!(
                    "group {i}: {}",
                    g.iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        eprintln!("{name}: new master keys:\n  {}", summary.join("\n  "));
        if !args.yes && !confirm("Update the file?")? {
            eprintln!("{name}: not changed");
            continue;
        }
        write_atomic(file, &out, 0o644)?;
        eprintln!("{name}: updated");
    }
    Ok(ExitStatus::Success)
}

/// A private temp dir (0700) with one 0600 file, wiped and removed on drop.
struct PrivateTemp {
    dir: PathBuf,
    file: PathBuf,
}

impl PrivateTemp {
    fn new(ext: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("sealgate-edit-{}", random_suffix()));
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let file = dir.join(format!("secret.{ext}"));
        Ok(PrivateTemp { dir, file })
    }

    fn write(&self, data: &[u8]) -> anyhow::Result<()> {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&self.file).context("cannot create the temp file")?;
        f.write_all(data)?;
        f.sync_all()?;
        Ok(())
    }
}

impl Drop for PrivateTemp {
    fn drop(&mut self) {
        // Overwrite before unlinking so the plaintext does not linger in
        // the page cache of a reused block (best effort).
        if let Ok(m) = std::fs::metadata(&self.file)
            && let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&self.file)
        {
            let _ = f.write_all(&vec![0u8; m.len() as usize]);
            let _ = f.sync_all();
        }
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_editor(path: &Path) -> anyhow::Result<()> {
    let editor = std::env::var("SOPS_EDITOR")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let mut parts = editor.split_whitespace();
    let prog = parts.next().ok_or_else(|| anyhow!("$EDITOR is empty"))?;
    let status = std::process::Command::new(prog)
        .args(parts)
        .arg(path)
        .status()
        .with_context(|| format!("cannot run editor {prog:?}"))?;
    if !status.success() {
        return Err(anyhow!(
            "editor {prog:?} exited with {status}; file not changed"
        ));
    }
    Ok(())
}

fn new_file_template(format: Format) -> &'static [u8] {
    match format {
        Format::Yaml => b"# New file: replace this example and save.\nexample_key: example_value\n",
        Format::Json => b"{\n\t\"example_key\": \"example_value\"\n}\n",
        Format::Dotenv => b"EXAMPLE_KEY=example_value\n",
        Format::Ini => b"[example]\nkey = value\n",
        Format::Binary => b"example content\n",
    }
}

/// `sealgate edit`.
pub fn edit(args: &EditArgs) -> anyhow::Result<ExitStatus> {
    let name = args.file.display().to_string();
    let format = format_arg(args.input_type.as_deref(), Some(&args.file))?;
    let existing = args.file.exists();
    let keyring = args.ids.keyring()?;
    let (plain, mut previous) = if existing {
        let input = std::fs::read(&args.file).with_context(|| format!("cannot read {name}"))?;
        let d = engine::decrypt_tree(&input, format, &keyring, args.ignore_mac)
            .map_err(|e| fail(e, &name))?;
        warn_unverified(&d, &name);
        let plain = engine::formats::emit_plain(format, &d.branches).map_err(|e| fail(e, &name))?;
        (
            SecretBytes::new(plain),
            Some((d.metadata, d.data_key, d.ivs)),
        )
    } else {
        (SecretBytes::from(new_file_template(format)), None)
    };
    let tmp = PrivateTemp::new(
        args.file
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("txt"),
    )?;
    tmp.write(plain.expose_secret())?;
    loop {
        run_editor(&tmp.file)?;
        let edited =
            SecretBytes::new(std::fs::read(&tmp.file).context("cannot read the edited file")?);
        if existing && edited == plain {
            eprintln!("{name}: file has not changed, nothing written");
            return Ok(ExitStatus::Success);
        }
        let parsed = engine::formats::parse_plain(format, edited.expose_secret()).and_then(|b| {
            if engine::formats::has_metadata(format, &b) {
                Err(SopsError::AlreadyEncrypted)
            } else {
                Ok(b)
            }
        });
        let branches = match parsed {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: the edited file is not valid {}: {e}", format.name());
                if std::io::stdin().is_terminal() && confirm("Re-open the editor to fix it?")? {
                    continue;
                }
                return Err(fail(e, &name));
            }
        };
        // Taken, not borrowed: every path below returns.
        let out = match previous.take() {
            Some((md, key, ivs)) => engine::reencrypt(branches, &md, &key, ivs, format),
            None => {
                let rule = creation_rule(&args.age, &[], args.config.as_deref(), &args.file)?;
                let opts = EncryptOptions {
                    groups: rule.groups,
                    shamir_threshold: rule.shamir_threshold,
                    selector: rule.selector,
                    mac_only_encrypted: rule.mac_only_encrypted,
                    binary: false,
                };
                engine::encrypt(
                    edited.expose_secret(),
                    format,
                    format,
                    &opts,
                    &with_cloud_keys(Keyring::new()),
                )
            }
        }
        .map_err(|e| fail(e, &name))?;
        write_atomic(&args.file, &out, 0o644)?;
        return Ok(ExitStatus::Success);
    }
}
