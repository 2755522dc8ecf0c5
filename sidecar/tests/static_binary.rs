//! The release sidecar is statically linked, so the init container can copy it into any model
//! image: no ELF interpreter and no shared-library dependencies. The binary comes from
//! `make sidecar-static` (or `$MODELSERVER_SIDECAR_STATIC`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const PT_INTERP: u32 = 3;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;

fn static_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MODELSERVER_SIDECAR_STATIC") {
        return PathBuf::from(path);
    }
    // <target>/debug/modelserver-sidecar -> <target>/x86_64-unknown-linux-gnu/release/...
    let dev = Path::new(env!("CARGO_BIN_EXE_modelserver-sidecar"));
    let target_dir = dev.parent().unwrap().parent().unwrap();
    target_dir.join("x86_64-unknown-linux-gnu/release/modelserver-sidecar")
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Program header types, and the `DT_NEEDED` count of the dynamic segment, of an ELF64 LE file.
fn inspect(elf: &[u8]) -> (Vec<u32>, usize) {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not ELF64");
    assert_eq!(elf[5], 1, "not little-endian");
    let phoff = usize::try_from(u64_at(elf, 0x20)).unwrap();
    let phentsize = usize::from(u16_at(elf, 0x36));
    let phnum = usize::from(u16_at(elf, 0x38));
    let mut types = Vec::new();
    let mut needed = 0;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let kind = u32_at(elf, ph);
        types.push(kind);
        if kind == PT_DYNAMIC {
            let offset = usize::try_from(u64_at(elf, ph + 0x08)).unwrap();
            let size = usize::try_from(u64_at(elf, ph + 0x20)).unwrap();
            for entry in elf[offset..offset + size].chunks_exact(16) {
                match u64_at(entry, 0) {
                    DT_NULL => break,
                    DT_NEEDED => needed += 1,
                    _ => {}
                }
            }
        }
    }
    (types, needed)
}

#[test]
fn the_development_binary_is_dynamic_so_the_check_can_tell() {
    let elf = std::fs::read(env!("CARGO_BIN_EXE_modelserver-sidecar")).unwrap();
    let (types, needed) = inspect(&elf);
    assert!(
        types.contains(&PT_INTERP) && needed > 0,
        "{types:?} {needed}"
    );
}

#[test]
fn release_binary_has_no_dynamic_dependencies() {
    let path = static_binary();
    let elf = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the static sidecar at {} ({e}): build it with `make sidecar-static` \
             (make test does) or point MODELSERVER_SIDECAR_STATIC at it",
            path.display()
        )
    });
    let (types, needed) = inspect(&elf);
    assert!(
        !types.contains(&PT_INTERP),
        "{} asks for an ELF interpreter",
        path.display()
    );
    assert_eq!(needed, 0, "{} needs shared libraries", path.display());

    // And it runs.
    let out = Command::new(&path).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("modelserver-sidecar"));
}
