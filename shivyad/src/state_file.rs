//! Durable copy of the daemon's own record (`--state-file`): written before a write is
//! acknowledged, read back at start, so `kill -9` and a restart lose no acknowledged write.

use shivya_core::p2p::protocol::RecordWire;
use shivya_core::p2p::NodeId;
use std::io::Write;
use std::path::Path;

const MAGIC: &str = "shivya-own-record 1";

/// Writes `r` atomically (temporary file, fsync, rename).
pub fn save(path: &Path, r: &RecordWire) -> std::io::Result<()> {
    let mut text = format!("{MAGIC}\norigin {}\nversion {}\n", r.origin, r.version);
    for (v, q) in &r.queue {
        text.push_str(&format!("q {v} {q:?}\n"));
    }
    for (s, d, x) in &r.offload {
        text.push_str(&format!("o {s} {d} {x:?}\n"));
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Reads a record written by [`save`]; `Ok(None)` when the file does not exist.
pub fn load(path: &Path) -> Result<Option<RecordWire>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read state file {}: {e}", path.display())),
    };
    let bad = |line: &str| format!("state file {}: cannot parse {line:?}", path.display());
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(format!(
            "state file {} is not a shivyad state file",
            path.display()
        ));
    }
    let mut r = RecordWire::default();
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["origin", id] => r.origin = NodeId::from_hex(id).ok_or_else(|| bad(line))?,
            ["version", v] => r.version = v.parse().map_err(|_| bad(line))?,
            ["q", v, q] => r.queue.push((
                v.parse().map_err(|_| bad(line))?,
                q.parse().map_err(|_| bad(line))?,
            )),
            ["o", s, d, x] => r.offload.push((
                s.parse().map_err(|_| bad(line))?,
                d.parse().map_err(|_| bad(line))?,
                x.parse().map_err(|_| bad(line))?,
            )),
            [] => {}
            _ => return Err(bad(line)),
        }
    }
    Ok(Some(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly() {
        let dir = std::env::temp_dir().join(format!("shivyad-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("own.state");
        let r = RecordWire {
            origin: NodeId::from_seed(3),
            version: 42,
            queue: vec![(0, 0.1), (3, 1e-300)],
            offload: vec![(0, 1, 2.5)],
        };
        save(&p, &r).unwrap();
        assert_eq!(load(&p).unwrap(), Some(r));
        assert_eq!(load(&dir.join("missing")).unwrap(), None);
        std::fs::write(&p, "garbage").unwrap();
        assert!(load(&p).is_err());
    }
}
