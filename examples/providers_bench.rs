//! Benchmark driver for `bench/providers.sh`: resolves many references over
//! fewer distinct OpenBao KV secrets, either naively (one backend call per
//! reference, in order — what a reconcile loop without a cache does) or
//! through `Frugal` (single-flight + cache), cold then warm.
//!
//! Usage: providers_bench ADDR TOKEN (seed|naive|frugal) REFS DISTINCT

use std::sync::Arc;
use std::time::Instant;

use sealgate::providers::cache::{Frugal, FrugalConfig};
use sealgate::providers::vault::{VaultAuth, VaultConfig, VaultProvider};
use sealgate::providers::{Provider, Reference};
use sealgate::secret::SecretString;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, token, mode, refs, distinct] = args.as_slice() else {
        anyhow::bail!("usage: providers_bench ADDR TOKEN (seed|naive|frugal) REFS DISTINCT");
    };
    let refs: usize = refs.parse()?;
    let distinct: usize = distinct.parse()?;
    let config = VaultConfig::new(
        "bench",
        addr.clone(),
        VaultAuth::Token(SecretString::from(token.as_str())),
    );
    let provider = VaultProvider::connect(config).await?;
    let keys: Vec<Reference> = (0..refs)
        .map(|i| Reference::key(format!("bench/s{}", i % distinct)).property("password"))
        .collect();
    match mode.as_str() {
        "seed" => {
            let client = vaultrs::client::VaultClient::new(
                vaultrs::client::VaultClientSettingsBuilder::default()
                    .address(addr.as_str())
                    .token(token.as_str())
                    .build()?,
            )?;
            for i in 0..distinct {
                let mut data = std::collections::HashMap::new();
                data.insert("password", format!("pw-{i}"));
                vaultrs::kv2::set(&client, "secret", &format!("bench/s{i}"), &data).await?;
            }
        }
        "naive" => {
            let t = Instant::now();
            for r in &keys {
                provider.fetch(r).await?;
            }
            println!("naive wall_ms={}", t.elapsed().as_millis());
        }
        "frugal" => {
            let p = Arc::new(Frugal::new(provider, FrugalConfig::default()));
            for phase in ["cold", "warm"] {
                let t = Instant::now();
                let mut tasks = Vec::with_capacity(keys.len());
                for r in &keys {
                    let (p, r) = (Arc::clone(&p), r.clone());
                    tasks.push(tokio::spawn(async move { p.fetch(&r).await.map(|_| ()) }));
                }
                for task in tasks {
                    task.await??;
                }
                println!(
                    "frugal-{phase} wall_ms={} calls_so_far={}",
                    t.elapsed().as_millis(),
                    p.counters()
                        .calls
                        .load(std::sync::atomic::Ordering::Relaxed)
                );
            }
        }
        other => anyhow::bail!("unknown mode {other:?}"),
    }
    Ok(())
}
