//! Binaries of other workspace packages that tests run (Cargo only tells a test where its own
//! package's binaries are): built once per test process with the same profile, then found in
//! the target directory beside the test executable.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The dev host (`durable-devhost`'s `devhost` binary).
pub fn devhost() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build("durable-devhost", "devhost"))
        .clone()
}

/// Builds `bin` of `package` in this test's profile and returns its path.
pub fn build(package: &str, bin: &str) -> PathBuf {
    let path = profile_dir().join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    cargo_build(package, &["--bin", bin], &path);
    path
}

/// Builds example `name` of `package` in this test's profile and returns its path.
#[allow(dead_code)] // Only tests/verify.rs runs an example.
pub fn example(package: &str, name: &str) -> PathBuf {
    let path = profile_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    cargo_build(package, &["--example", name], &path);
    path
}

/// The profile's output directory: the test runs from <target dir>/<profile dir>/deps/.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from <target dir>/<profile dir>/deps")
        .to_path_buf()
}

/// Runs `cargo build` of `target` (`--bin NAME` or `--example NAME`) of `package` in this
/// test's profile and target directory, and checks it produced `path`.
fn cargo_build(package: &str, target: &[&str], path: &std::path::Path) {
    let dir = profile_dir();
    let target_dir = dir.parent().expect("a profile directory has a parent");
    // Cargo's dev and test profiles build into `debug`; any other directory is its profile's.
    let profile = match dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    // Cargo sets these for the test process only; inherited, they make build scripts that
    // watch them (ring's watches CARGO_MANIFEST_DIR) rebuild the TLS and Azure crates on every
    // switch between a build from here and one from the shell.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_the_test = [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || matches!(
                &*name,
                "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "CARGO_RUSTC_CURRENT_DIR"
            );
        if set_for_the_test {
            command.env_remove(&*name);
        }
    }
    let status = command
        .args(["build", "--locked", "--quiet", "-p", package])
        .args(target)
        .args(["--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {target:?}: {e}"));
    assert!(status.success(), "building {package}'s {target:?} failed");
    assert!(path.exists(), "{} was not built", path.display());
}
