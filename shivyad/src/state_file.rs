//! Durable copy of the daemon's own record (`--state-file`): written before a write is
//! acknowledged, read back at start, so `kill -9` and a restart lose no acknowledged write.
//! The file is JSON (serde), with a format tag; numbers round-trip exactly.

use crate::status::RecordJson;
use serde::{Deserialize, Serialize};
use shivya_core::p2p::protocol::RecordWire;
use shivya_core::p2p::NodeId;
use std::io::Write;
use std::path::Path;

const FORMAT: &str = "shivya-own-record";
const FORMAT_VERSION: u32 = 2;
/// A state file is one record: far below this (a record fits one 1 200-byte frame).
const MAX_FILE: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: String,
    format_version: u32,
    record: RecordJson,
}

/// Writes `r` atomically (temporary file, fsync, rename).
pub fn save(path: &Path, r: &RecordWire) -> std::io::Result<()> {
    let text = serde_json::to_vec(&StateFile {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        record: RecordJson::from(r),
    })
    .map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Reads a record written by [`save`]; `Ok(None)` when the file does not exist.
pub fn load(path: &Path) -> Result<Option<RecordWire>, String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE => {
            return Err(format!(
                "state file {shown} is {} bytes: not a shivyad state file",
                m.len()
            ))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read state file {shown}: {e}")),
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read state file {shown}: {e}"))?;
    let f: StateFile = serde_json::from_slice(&bytes)
        .map_err(|e| format!("state file {shown} is not a shivyad state file: {e}"))?;
    if f.format != FORMAT || f.format_version != FORMAT_VERSION {
        return Err(format!(
            "state file {shown} has format {:?} version {}, this shivyad reads {FORMAT:?} version {FORMAT_VERSION}",
            f.format, f.format_version
        ));
    }
    let origin = NodeId::from_hex(&f.record.origin)
        .ok_or_else(|| format!("state file {shown}: bad origin {:?}", f.record.origin))?;
    Ok(Some(RecordWire {
        origin,
        version: f.record.version,
        queue: f.record.queue,
        offload: f.record.offload,
        seal: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly_and_refuses_what_it_did_not_write() {
        let dir = std::env::temp_dir().join(format!("shivyad-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("own.state");
        let r = RecordWire {
            origin: NodeId::from_seed(3),
            version: 42,
            queue: vec![(0, 0.1), (3, 1e-300), (4, 0.30000000000000004)],
            offload: vec![(0, 1, 2.5), (1, 2, 1.0 / 3.0)],
            seal: None,
        };
        save(&p, &r).unwrap();
        assert_eq!(load(&p).unwrap(), Some(r.clone()));
        assert_eq!(load(&dir.join("missing")).unwrap(), None);
        for bad in [
            "garbage".to_string(),
            "shivya-own-record 1\norigin 00\nversion 1\n".to_string(),
            std::fs::read_to_string(&p)
                .unwrap()
                .replace("\"format_version\":2", "\"format_version\":9"),
            std::fs::read_to_string(&p)
                .unwrap()
                .replace(&r.origin.to_hex(), "zz"),
        ] {
            std::fs::write(&p, &bad).unwrap();
            let e = load(&p).unwrap_err();
            assert!(e.contains("state file"), "{e}");
        }
        std::fs::write(&p, vec![b' '; (MAX_FILE + 1) as usize]).unwrap();
        assert!(load(&p).unwrap_err().contains("bytes"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
