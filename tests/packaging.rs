//! The deployment package and script: `scripts/package.sh` lays the zip out as the Functions
//! host expects (host.json, one folder per function, the executable `handler` at the root), and
//! `scripts/deploy.sh` names every missing prerequisite before it touches anything.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A fresh folder under cargo's per-test scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("packaging-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the command starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One entry of a zip's central directory.
#[derive(Debug)]
struct Entry {
    name: String,
    /// The host system that wrote the entry (3 = Unix, whose modes the attributes carry).
    made_by_system: u8,
    /// The Unix mode (file type and permissions): the high 16 bits of the external attributes.
    mode: u32,
    uncompressed_size: u64,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Reads the central directory, where unzip tools (and the host's package mount) find each
/// entry's mode. Enough of the format for the packages `zip` writes here (no zip64).
fn central_directory(zip: &[u8]) -> Vec<Entry> {
    const END: u32 = 0x0605_4b50;
    const HEADER: u32 = 0x0201_4b50;
    let end = (0..=zip.len() - 22)
        .rev()
        .find(|&at| u32_at(zip, at) == END)
        .expect("end of central directory record");
    let count = usize::from(u16_at(zip, end + 10));
    let mut at = u32_at(zip, end + 16) as usize;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        assert_eq!(u32_at(zip, at), HEADER, "central directory header at {at}");
        let name_len = usize::from(u16_at(zip, at + 28));
        let extra_len = usize::from(u16_at(zip, at + 30));
        let comment_len = usize::from(u16_at(zip, at + 32));
        entries.push(Entry {
            name: text(&zip[at + 46..at + 46 + name_len]),
            made_by_system: zip[at + 5],
            mode: u32_at(zip, at + 38) >> 16,
            uncompressed_size: u64::from(u32_at(zip, at + 24)),
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    entries
}

/// The function folders of the repository: those under functions/ with a function.json.
fn function_names() -> BTreeSet<String> {
    fs::read_dir(Path::new(REPO).join("functions"))
        .expect("functions/")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.join("function.json").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn package(binary: &Path, out: &Path) -> Output {
    run(Command::new(Path::new(REPO).join("scripts/package.sh"))
        .arg("--binary")
        .arg(binary)
        .arg(out))
}

#[test]
fn the_package_has_the_host_layout_and_an_executable_handler() {
    let dir = scratch("layout");
    // The worker cargo built for the tests (debug: the layout does not depend on the profile,
    // and it is already built), copied without its executable bit: the script must set it.
    let binary = dir.join("worker");
    fs::copy(env!("CARGO_BIN_EXE_worker"), &binary).expect("copy the worker");
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o644)).unwrap();
    let zip_path = dir.join("out/app.zip");

    let output = package(&binary, &zip_path);
    assert!(
        output.status.success(),
        "package.sh failed: {}",
        text(&output.stderr)
    );

    let entries = central_directory(&fs::read(&zip_path).expect("the zip"));
    let functions = function_names();
    assert!(
        functions.len() >= 9,
        "expected the app's functions, found {functions:?}"
    );
    let files: BTreeSet<String> = entries
        .iter()
        .filter(|e| !e.name.ends_with('/'))
        .map(|e| e.name.clone())
        .collect();
    let mut expected: BTreeSet<String> = functions
        .iter()
        .map(|name| format!("{name}/function.json"))
        .collect();
    expected.insert("host.json".into());
    expected.insert("handler".into());
    // Exactly these: no local.settings.json, functions/ prefix, README or target/ output.
    assert_eq!(files, expected);
    let folders: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| e.name.strip_suffix('/').map(str::to_owned))
        .collect();
    assert!(
        folders.is_subset(&functions),
        "unexpected folders {folders:?}"
    );

    for entry in &entries {
        assert_eq!(entry.made_by_system, 3, "{} has no Unix mode", entry.name);
    }
    let handler = entries.iter().find(|e| e.name == "handler").unwrap();
    assert_eq!(
        handler.mode & 0o170_000,
        0o100_000,
        "handler is a regular file"
    );
    assert_eq!(
        handler.mode & 0o777,
        0o755,
        "handler mode {:o}",
        handler.mode
    );
    let worker_size = fs::metadata(env!("CARGO_BIN_EXE_worker")).unwrap().len();
    assert_eq!(
        handler.uncompressed_size, worker_size,
        "handler is the worker"
    );
    let host = entries.iter().find(|e| e.name == "host.json").unwrap();
    assert_eq!(host.mode & 0o777, 0o644);

    // Unpacked as a Linux host would, the files are the repository's and the handler runs.
    let unpacked = dir.join("wwwroot");
    let output = run(Command::new("unzip")
        .arg("-q")
        .arg(&zip_path)
        .arg("-d")
        .arg(&unpacked));
    assert!(output.status.success(), "unzip: {}", text(&output.stderr));
    assert_eq!(
        fs::read(unpacked.join("host.json")).unwrap(),
        fs::read(Path::new(REPO).join("host.json")).unwrap()
    );
    for name in &functions {
        assert_eq!(
            fs::read(unpacked.join(name).join("function.json")).unwrap(),
            fs::read(
                Path::new(REPO)
                    .join("functions")
                    .join(name)
                    .join("function.json")
            )
            .unwrap(),
            "{name}/function.json"
        );
    }
    // Without the host's port variable the worker refuses to start, naming it: proof that the
    // unpacked file is the worker and is executable.
    let output = run(Command::new(unpacked.join("handler")).env_clear());
    assert!(!output.status.success());
    assert!(
        text(&output.stdout).contains("FUNCTIONS_CUSTOMHANDLER_PORT")
            || text(&output.stderr).contains("FUNCTIONS_CUSTOMHANDLER_PORT"),
        "stdout: {} stderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[test]
fn packaging_refuses_a_file_that_is_not_a_linux_executable() {
    let dir = scratch("not-elf");
    let out = dir.join("app.zip");
    let output = package(&Path::new(REPO).join("host.json"), &out);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("not an x86-64 Linux executable"),
        "{}",
        text(&output.stderr)
    );
    assert!(!out.exists(), "no package is left behind");

    let output = run(&mut Command::new(
        Path::new(REPO).join("scripts/package.sh"),
    ));
    assert_eq!(
        output.status.code(),
        Some(2),
        "usage error without arguments"
    );
}

/// bash, found on this process's PATH, so the script can run under an empty one.
fn bash() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").expect("PATH"))
        .map(|dir| dir.join("bash"))
        .find(|path| path.is_file())
        .expect("bash on PATH")
}

#[test]
fn deploy_names_every_missing_prerequisite() {
    let empty = scratch("empty-path");
    let output = run(Command::new(bash())
        .arg(Path::new(REPO).join("scripts/deploy.sh"))
        .arg("--check-only")
        .env_clear()
        .env("PATH", &empty));
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    for missing in [
        "--resource-group",
        "--location",
        "az: the Azure CLI",
        "cargo",
        "rustup",
        "musl-gcc",
        "zip",
        "curl",
    ] {
        assert!(
            stderr.contains(&format!("  - {missing}")),
            "'{missing}' not reported:\n{stderr}"
        );
    }

    let output = run(Command::new(Path::new(REPO).join("scripts/deploy.sh")).arg("--bogus"));
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("usage: scripts/deploy.sh"));
}
