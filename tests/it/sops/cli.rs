//! The sops commands as a user meets them: exit codes, errors that name the
//! problem, atomic in-place writes, `edit`, and no plaintext in any error
//! or log line.

use super::{Lab, ok, run, sealgate};

const SECRET: &str = "correct-horse-battery-staple-42";

fn encrypted(lab: &Lab) -> std::path::PathBuf {
    let src = lab.write(
        "s.yaml",
        format!("user: admin\npassword: {SECRET}\nnote_unencrypted: visible\n").as_bytes(),
    );
    let out = ok({
        let mut c = sealgate(lab, None);
        c.args(["encrypt", "--age", lab.recipient(0)]).arg(&src);
        c
    });
    lab.write("s.enc.yaml", &out)
}

fn assert_no_leak(o: &std::process::Output, what: &str) {
    for stream in [&o.stdout, &o.stderr] {
        let s = String::from_utf8_lossy(stream);
        assert!(
            !s.contains(SECRET) && !s.contains("horse"),
            "{what} leaked: {s}"
        );
    }
}

#[test]
fn tampering_and_wrong_keys_fail_with_documented_codes_and_no_plaintext() {
    let lab = Lab::new(2);
    let file = encrypted(&lab);
    let good = lab.keyfile(&[0]);
    let wrong = lab.keyfile(&[1]);
    let text = std::fs::read_to_string(&file).unwrap();

    // Wrong key: exit 2, message names the cause and the recipients.
    let mut c = sealgate(&lab, Some(&wrong));
    c.args(["--log-level", "trace", "decrypt"]).arg(&file);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no matching keys"));
    assert_no_leak(&o, "wrong key");

    // A changed clear value: MAC mismatch, exit 1, nothing on stdout.
    let tampered = lab.write("t1.yaml", text.replace("visible", "visiblE").as_bytes());
    let mut c = sealgate(&lab, Some(&good));
    c.args(["--log-level", "trace", "decrypt"]).arg(&tampered);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid MAC"));
    assert_no_leak(&o, "MAC mismatch");

    // --ignore-mac prints, and warns loudly.
    let mut c = sealgate(&lab, Some(&good));
    c.args(["decrypt", "--ignore-mac"]).arg(&tampered);
    let o = run(c);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("NOT integrity-checked"));

    // A value moved to another key: authentication fails at that path.
    let moved = lab.write("t2.yaml", text.replace("password:", "passw0rd:").as_bytes());
    let mut c = sealgate(&lab, Some(&good));
    c.args(["--log-level", "trace", "decrypt"]).arg(&moved);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("passw0rd") && err.contains("authentication failed"),
        "{err}"
    );
    assert_no_leak(&o, "moved value");

    // A malformed ENC[...] names the key path, exit 2.
    let bad = lab.write(
        "t3.yaml",
        text.replacen("ENC[AES256_GCM,data:", "ENC[AES256_GCM,dat:", 1)
            .as_bytes(),
    );
    let mut c = sealgate(&lab, Some(&good));
    c.arg("decrypt").arg(&bad);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("malformed encrypted value at user"));

    // Not a sops file / unsupported version.
    let mut c = sealgate(&lab, Some(&good));
    c.arg("decrypt").arg(lab.write("plain.yaml", b"a: b\n"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("sops metadata not found"));
    let v2 = lab.write(
        "v2.yaml",
        text.replace("version: 3.13.2", "version: 2.0.0").as_bytes(),
    );
    let mut c = sealgate(&lab, Some(&good));
    c.arg("decrypt").arg(&v2);
    assert!(String::from_utf8_lossy(&run(c).stderr).contains("unsupported sops file version"));

    // Invalid UTF-8 in a text format.
    let mut c = sealgate(&lab, None);
    c.args(["encrypt", "--age", lab.recipient(0)])
        .arg(lab.write("bad.yaml", b"a: \xff\xfe\n"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not valid UTF-8"));
}

#[test]
fn in_place_extract_stdin_and_filestatus() {
    let lab = Lab::new(1);
    let file = encrypted(&lab);
    let key = lab.keyfile(&[0]);

    let out = ok({
        let mut c = sealgate(&lab, Some(&key));
        c.args(["decrypt", "--extract", "[\"password\"]"])
            .arg(&file);
        c
    });
    assert_eq!(out, SECRET.as_bytes());
    // Lists and maps come out in the file's format.
    let lfile = lab.write("l.yaml", b"hosts:\n    - a.example\n    - port: 5\n");
    let lenc = ok({
        let mut c = sealgate(&lab, None);
        c.args(["encrypt", "--age", lab.recipient(0)]).arg(&lfile);
        c
    });
    let lenc = lab.write("l.enc.yaml", &lenc);
    let out = ok({
        let mut c = sealgate(&lab, Some(&key));
        c.args(["decrypt", "--extract", "[\"hosts\"]"]).arg(&lenc);
        c
    });
    assert_eq!(String::from_utf8_lossy(&out), "- a.example\n- port: 5\n");
    let out = ok({
        let mut c = sealgate(&lab, Some(&key));
        c.args(["decrypt", "--extract", "[\"hosts\"][1]"])
            .arg(&lenc);
        c
    });
    assert_eq!(String::from_utf8_lossy(&out), "port: 5\n");
    let mut c = sealgate(&lab, Some(&key));
    c.args(["decrypt", "--extract", "[\"nope\"]"]).arg(&lenc);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));

    // stdin with an explicit type.
    let out = {
        let mut c = sealgate(&lab, Some(&key));
        c.args(["decrypt", "--input-type", "yaml", "-"]);
        crate::support::tools::run_ok(&mut c, Some(&std::fs::read(&file).unwrap()))
    };
    assert!(String::from_utf8_lossy(&out).contains(SECRET));

    let st = |p: &std::path::Path| {
        ok({
            let mut c = sealgate(&lab, None);
            c.arg("filestatus").arg(p);
            c
        })
    };
    assert_eq!(st(&file), b"{\"encrypted\":true}\n");

    // In place: decrypted, no temp file left behind, mode kept.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok({
        let mut c = sealgate(&lab, Some(&key));
        c.args(["decrypt", "-i"]).arg(&file);
        c
    });
    assert_eq!(st(&file), b"{\"encrypted\":false}\n");
    assert!(std::fs::read_to_string(&file).unwrap().contains(SECRET));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let leftovers: Vec<_> = std::fs::read_dir(lab.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".sealgate-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

    // Encrypting an encrypted file is refused.
    ok({
        let mut c = sealgate(&lab, None);
        c.args(["encrypt", "-i", "--age", lab.recipient(0)])
            .arg(&file);
        c
    });
    let mut c = sealgate(&lab, None);
    c.args(["encrypt", "--age", lab.recipient(0)]).arg(&file);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already encrypted"));

    // Empty and comment-only YAML is refused, as sops refuses it (sops
    // encrypts comment-only dotenv and INI files, and so do we).
    for (name, body) in [("e.yaml", "\n\n"), ("c.yaml", "# only\n---\n")] {
        let mut c = sealgate(&lab, None);
        c.args(["encrypt", "--age", lab.recipient(0)])
            .arg(lab.write(name, body.as_bytes()));
        let o = run(c);
        assert_eq!(o.status.code(), Some(2), "{name}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("nothing to encrypt"),
            "{name}"
        );
    }

    // No recipients anywhere: a clear message.
    let mut c = sealgate(&lab, None);
    c.arg("encrypt").arg(lab.write("n.yaml", b"a: b\n"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no recipients"));
}

#[test]
fn edit_keeps_the_data_key_refuses_invalid_syntax_and_wipes_the_temp_file() {
    let lab = Lab::new(1);
    let file = encrypted(&lab);
    let key = lab.keyfile(&[0]);
    let before = std::fs::read_to_string(&file).unwrap();
    let enc_block =
        |t: &str| t[t.find("-----BEGIN").unwrap()..t.find("-----END").unwrap()].to_owned();

    // An editor that records the temp path and its mode, then edits.
    let log = lab.path("editor.log");
    let editor = lab.write(
        "ed.sh",
        format!(
            "#!/bin/sh\nstat -c '%a' \"$1\" > {log}\nstat -c '%a' \"$(dirname \"$1\")\" >> {log}\necho \"$1\" >> {log}\nsed -i 's/admin/root/' \"$1\"\n",
            log = log.display()
        )
        .as_bytes(),
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    ok({
        let mut c = sealgate(&lab, Some(&key));
        c.env("EDITOR", &editor)
            .env_remove("SOPS_EDITOR")
            .arg("edit")
            .arg(&file);
        c
    });
    let after = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        enc_block(&before),
        enc_block(&after),
        "edit must keep the wrapped data key"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    let mut lines = logged.lines();
    assert_eq!(lines.next(), Some("600"), "temp file mode");
    assert_eq!(lines.next(), Some("700"), "temp dir mode");
    let tmp = lines.next().unwrap();
    assert!(
        !std::path::Path::new(tmp).exists(),
        "temp file must be removed"
    );
    let out = ok({
        let mut c = sealgate(&lab, Some(&key));
        c.arg("decrypt").arg(&file);
        c
    });
    assert!(String::from_utf8_lossy(&out).starts_with("user: root\n"));

    // Invalid YAML from the editor (no terminal to re-open): refused, exit
    // 2, file untouched.
    let breaker = lab.write("break.sh", b"#!/bin/sh\nprintf 'a: [\\n' > \"$1\"\n");
    std::fs::set_permissions(
        &breaker,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut c = sealgate(&lab, Some(&key));
    c.env("EDITOR", &breaker)
        .env_remove("SOPS_EDITOR")
        .arg("edit")
        .arg(&file);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not valid yaml"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), after);
}

#[test]
fn unknown_master_key_types_survive_edit_and_decrypt() {
    let lab = Lab::new(1);
    let file = encrypted(&lab);
    let key = lab.keyfile(&[0]);
    // Add a pgp entry as a sops 3.13 file from a PGP-using team would have.
    let text = std::fs::read_to_string(&file).unwrap();
    let pgp = "    pgp:\n        - created_at: \"2024-01-01T00:00:00Z\"\n          enc: |\n            -----BEGIN PGP MESSAGE-----\n            AAAA\n            -----END PGP MESSAGE-----\n          fp: 0123456789ABCDEF\n";
    let with_pgp = text.replace("    lastmodified:", &format!("{pgp}    lastmodified:"));
    assert_ne!(with_pgp, text);
    std::fs::write(&file, &with_pgp).unwrap();
    let editor = lab.write("ed.sh", b"#!/bin/sh\nsed -i 's/admin/root/' \"$1\"\n");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    ok({
        let mut c = sealgate(&lab, Some(&key));
        c.env("EDITOR", &editor)
            .env_remove("SOPS_EDITOR")
            .arg("edit")
            .arg(&file);
        c
    });
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(
        after.contains(pgp),
        "pgp entry must be kept verbatim:\n{after}"
    );
    // rotate cannot re-wrap for pgp and says so instead of dropping it.
    let mut c = sealgate(&lab, Some(&key));
    c.args(["rotate", "-i"]).arg(&file);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pgp"));
}

#[test]
fn help_texts_carry_examples() {
    let lab = Lab::new(0);
    for cmd in [
        "encrypt",
        "decrypt",
        "edit",
        "updatekeys",
        "rotate",
        "filestatus",
    ] {
        let out = ok({
            let mut c = sealgate(&lab, None);
            c.args([cmd, "--help"]);
            c
        });
        assert!(
            String::from_utf8_lossy(&out).contains("Example"),
            "{cmd} --help has no example"
        );
    }
}

/// Identities are found where sops looks: SOPS_AGE_KEY, SOPS_AGE_KEY_FILE,
/// the default keys.txt under the user config dir, plus --identity.
#[test]
fn identities_are_discovered_the_sops_way() {
    let lab = Lab::new(1);
    let file = encrypted(&lab);
    let key_text = std::fs::read_to_string(&lab.keys[0].0).unwrap();
    let decrypts = |c: &mut std::process::Command| {
        c.arg("decrypt").arg(&file);
        let o = crate::support::tools::run(c, None);
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains(SECRET)
    };
    // Nothing configured: refused.
    assert!(!decrypts(&mut sealgate(&lab, None)));
    // SOPS_AGE_KEY (the secret key line among comments, as keys.txt has it).
    assert!(decrypts(
        sealgate(&lab, None).env("SOPS_AGE_KEY", &key_text)
    ));
    // SOPS_AGE_KEY_FILE.
    assert!(decrypts(&mut sealgate(&lab, Some(&lab.keys[0].0))));
    // --identity.
    let mut c = sealgate(&lab, None);
    c.args(["decrypt", "--identity"])
        .arg(&lab.keys[0].0)
        .arg(&file);
    assert!(String::from_utf8_lossy(&ok(c)).contains(SECRET));
    // Default location: $XDG_CONFIG_HOME/sops/age/keys.txt.
    let default = lab.path("xdg/sops/age/keys.txt");
    std::fs::create_dir_all(default.parent().unwrap()).unwrap();
    std::fs::write(&default, &key_text).unwrap();
    assert!(decrypts(&mut sealgate(&lab, None)));
    std::fs::remove_file(&default).unwrap();
    // ... and ~/.config/sops/age/keys.txt when XDG_CONFIG_HOME is unset.
    let home_default = lab.path(".config/sops/age/keys.txt");
    std::fs::create_dir_all(home_default.parent().unwrap()).unwrap();
    std::fs::write(&home_default, &key_text).unwrap();
    assert!(decrypts(sealgate(&lab, None).env_remove("XDG_CONFIG_HOME")));
    // A malformed key is reported without echoing it.
    let mut c = sealgate(&lab, None);
    c.env("SOPS_AGE_KEY", "AGE-SECRET-KEY-1-QQQQSECRETMATERIALQQQQ")
        .arg("decrypt")
        .arg(&file);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("SOPS_AGE_KEY") && !err.contains("SECRETMATERIAL"),
        "{err}"
    );
}

/// `edit` on a missing file creates it, encrypted for the `.sops.yaml`
/// recipients, and sops reads the result.
#[test]
fn edit_creates_a_new_file_from_the_creation_rule() {
    let lab = Lab::new(1);
    let key = lab.keyfile(&[0]);
    lab.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - path_regex: \\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: {}\n",
            lab.recipient(0)
        )
        .as_bytes(),
    );
    let editor = lab.write(
        "ed.sh",
        b"#!/bin/sh\nprintf 'kind: Secret\\nstringData:\\n    token: t0k3n-value\\n' > \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let file = lab.path("new.yaml");
    ok({
        let mut c = sealgate(&lab, None);
        c.env("EDITOR", &editor)
            .env_remove("SOPS_EDITOR")
            .arg("edit")
            .arg(&file);
        c
    });
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("kind: Secret") && !text.contains("t0k3n-value"),
        "{text}"
    );
    assert!(
        text.contains("encrypted_regex: ^(data|stringData)$"),
        "{text}"
    );
    for (_, sbin) in super::sopses() {
        let out = ok({
            let mut c = super::sops(&sbin, &lab, Some(&key));
            c.arg("decrypt").arg(&file);
            c
        });
        assert_eq!(
            String::from_utf8_lossy(&out),
            "kind: Secret\nstringData:\n    token: t0k3n-value\n"
        );
    }
}
