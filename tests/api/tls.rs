//! HTTPS: with a certificate configured the API speaks TLS only, and the CLI trusts a
//! private CA given by `--api-ca`.

use std::process::Command;

use super::{ApiRun, Tokens, POLICY};

#[test]
fn the_api_serves_https_with_a_configured_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A private CA and a server certificate it signed, as a team with its own PKI has.
    let p = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    let (ca, ca_key, csr, cert, key, ext) = (
        p("ca.pem"),
        p("ca-key.pem"),
        p("server.csr"),
        p("cert.pem"),
        p("key.pem"),
        p("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n",
    )
    .expect("write ext");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for args in [
        [
            &["req", "-x509"][..],
            &ec[..],
            &[
                "-days",
                "2",
                "-subj",
                "/CN=test CA",
                "-keyout",
                &ca_key,
                "-out",
                &ca,
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec[..],
            &["-subj", "/CN=localhost", "-keyout", &key, "-out", &csr],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    ] {
        let made = Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl runs (Debian's openssl package)");
        assert!(
            made.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let tokens = Tokens::make(dir.path());
    let run = ApiRun::start(
        dir.path(),
        POLICY,
        &tokens,
        &["--api-tls-cert", &cert, "--api-tls-key", &key],
    );
    assert!(run.base.starts_with("https://127.0.0.1:"), "{}", run.base);

    let agents = |ca: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
        cmd.args(["agents", "--api-url", &run.base])
            .env("CONCLAVE_API_TOKEN", &tokens.viewer)
            .env_remove("CONCLAVE_API_CA");
        if let Some(ca) = ca {
            cmd.args(["--api-ca", ca]);
        }
        let out = cmd.output().expect("conclave runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = agents(Some(&ca));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("scaler       enforce"), "{out}");
    // Without trusting the CA the client refuses the certificate.
    let (code, _, err) = agents(None);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    // Plain HTTP to the TLS port gets no answer.
    let plain = run.base.replacen("https://", "http://", 1);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .build()
        .into();
    assert!(agent.get(&format!("{plain}/healthz")).call().is_err());
    drop(run);
}

#[test]
fn a_bad_certificate_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    let bogus = dir.path().join("cert.pem");
    std::fs::write(&bogus, "not a certificate\n").expect("write");
    let flag = |f: &str| std::ffi::OsString::from(f);
    let (cert, key, path) = (
        flag("--api-tls-cert"),
        flag("--api-tls-key"),
        bogus.as_os_str(),
    );
    let stderr = super::refused_start(dir.path(), &tokens, &[&cert, path, &key, path]);
    assert_eq!(
        stderr,
        format!(
            "error: API TLS: certificate `{}` holds no certificate",
            bogus.display()
        )
    );
}
