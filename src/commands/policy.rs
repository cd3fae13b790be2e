//! `conclave policy validate|explain|schema|test`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use conclave_agents::Catalog;
use conclave_runtime::{policy, policy_test};

fn print_errors(errors: &[conclave_runtime::PolicyError]) {
    for e in errors {
        println!("{e}");
    }
}

/// Validates every file; prints every error; exit 1 if any file has one.
pub fn validate(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut bad = 0usize;
    for f in files {
        match policy::load(f, &Catalog) {
            Ok(p) => println!(
                "ok {} (policy `{}`, revision `{}`)",
                f.display(),
                p.name(),
                p.revision()
            ),
            Err(errors) => {
                bad += 1;
                print_errors(&errors);
            }
        }
    }
    if bad > 0 {
        println!("{bad} of {} policies invalid", files.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the effective policy as YAML.
pub fn explain(file: &Path) -> anyhow::Result<ExitCode> {
    match policy::load(file, &Catalog) {
        Ok(p) => {
            let yaml = policy::explain(&p).context("serializing the effective policy")?;
            print!("{yaml}");
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            print_errors(&errors);
            Ok(ExitCode::from(1))
        }
    }
}

/// Prints the policy JSON Schema, with agent names from this build.
pub fn schema() -> anyhow::Result<ExitCode> {
    let schema = policy::json_schema(&Catalog);
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}

fn collect_tests(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading folder `{}`", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// Runs policy tests; prints one line per test and a closing `N passed, M failed`.
pub fn test(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in collect_tests(paths)? {
        match policy_test::run_file(&file, &Catalog) {
            Ok(report) => {
                println!("{} (policy {})", report.file, report.policy);
                for r in &report.results {
                    if r.passed() {
                        passed += 1;
                        println!("  ok   {}", r.name);
                    } else {
                        failed += 1;
                        println!("  FAIL {}", r.name);
                        for f in &r.failures {
                            println!("    {f}");
                        }
                    }
                }
            }
            Err(errors) => {
                failed += 1;
                print_errors(&errors);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
