//! moto's standalone server: a local AWS endpoint for Secrets Manager, KMS,
//! STS and SSM.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::process::{Service, free_port, http_get_status, start_with_retry};
use super::tools;

/// Region every moto test uses; moto keeps state per region and account.
pub const REGION: &str = "us-east-1";

/// A running moto server owned by one test.
pub struct Moto {
    service: Service,
    port: u16,
    _dir: TempDir,
}

impl Moto {
    /// Starts a fresh server (own state, nothing shared between tests).
    pub fn start() -> Self {
        let bin = tools::moto_server();
        start_with_retry("moto", || {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("HOME", dir.path())
                // Never pick up a developer's real credentials or profile.
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY");
            let mut service =
                Service::spawn("moto", cmd, &dir.path().join("moto.log"), Signal::SIGTERM);
            // Python start-up is slow on a cold cache; allow for it.
            service.wait_ready(Duration::from_secs(60), || {
                http_get_status(port, "/moto-api/data.json", |c| c == 200)
            })?;
            Ok(Self {
                service,
                port,
                _dir: dir,
            })
        })
    }

    /// `http://127.0.0.1:PORT`, the endpoint override for the AWS SDK.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Process id, for tests proving the server stops.
    pub fn pid(&self) -> u32 {
        self.service.pid()
    }

    /// SDK configuration pointing at this server with static test
    /// credentials (moto accepts any).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let creds = aws_sdk_secretsmanager::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "sealgate-tests",
        );
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(creds)
            .load()
            .await
    }
}
