//! Templates on disk: `$DATA/templates/<name>/{rootfs.ext4, checkpoint/, template.json}`.
//!
//! The store only knows files; mounting is the [`super::ImageRegistry`]'s job. A template
//! exists when its `rootfs.ext4` exists (metadata is optional so hand-made images work).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{StorageError, validate_name, write_file_atomic};

/// Version of `template.json`. Any change to [`TemplateMeta`] needs a bump.
pub const TEMPLATE_META_VERSION: u32 = 1;

/// A validated template name (a safe path component).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateName(String);

impl TemplateName {
    /// Validates `name` (see [`validate_name`]).
    pub fn new(name: &str) -> Result<Self, StorageError> {
        validate_name("template name", name)?;
        Ok(TemplateName(name.to_string()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TemplateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a template holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    /// A filesystem image only: sandboxes boot from it.
    Image,
    /// An image plus a runtime checkpoint: sandboxes restore from it (fork semantics).
    Snapshot,
}

/// `template.json`: persisted, versioned (unknown versions are refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateMeta {
    /// Always [`TEMPLATE_META_VERSION`] when written by this agent.
    pub version: u32,
    /// Image or snapshot.
    pub kind: TemplateKind,
    /// Seconds since the Unix epoch.
    pub created_at_unix: u64,
    /// vCPUs of the sandbox a snapshot was taken from (snapshots restore with these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    /// Memory MiB of the sandbox a snapshot was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// The template a snapshot's sandbox was created from (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl TemplateMeta {
    /// Metadata for a new template of `kind`, created now.
    pub fn new(kind: TemplateKind) -> Self {
        TemplateMeta {
            version: TEMPLATE_META_VERSION,
            kind,
            created_at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            vcpus: None,
            memory_mib: None,
            parent: None,
        }
    }
}

/// A template found on disk.
#[derive(Debug, Clone)]
pub struct Template {
    /// Its name.
    pub name: TemplateName,
    /// `$DATA/templates/<name>`.
    pub dir: PathBuf,
    /// `rootfs.ext4` in that dir.
    pub rootfs: PathBuf,
    /// The checkpoint dir, present only for snapshot templates.
    pub checkpoint: Option<PathBuf>,
    /// Metadata; `None` for a bare image without `template.json`.
    pub meta: Option<TemplateMeta>,
}

impl Template {
    /// Image or snapshot (a bare image without metadata counts as an image unless it has a
    /// checkpoint dir).
    pub fn kind(&self) -> TemplateKind {
        match (&self.meta, &self.checkpoint) {
            (Some(m), _) => m.kind,
            (None, Some(_)) => TemplateKind::Snapshot,
            (None, None) => TemplateKind::Image,
        }
    }
}

/// The templates of one host, under `$DATA/templates`.
#[derive(Debug, Clone)]
pub struct TemplateStore {
    root: PathBuf,
}

impl TemplateStore {
    /// The store of data dir `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        TemplateStore {
            root: data_dir.join("templates"),
        }
    }

    /// `$DATA/templates`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `$DATA/templates/<name>` (may not exist).
    pub fn dir(&self, name: &TemplateName) -> PathBuf {
        self.root.join(name.as_str())
    }

    /// `$DATA/templates/<name>/rootfs.ext4` (may not exist).
    pub fn rootfs_path(&self, name: &TemplateName) -> PathBuf {
        self.dir(name).join("rootfs.ext4")
    }

    /// `$DATA/templates/<name>/checkpoint` (may not exist).
    pub fn checkpoint_dir(&self, name: &TemplateName) -> PathBuf {
        self.dir(name).join("checkpoint")
    }

    fn meta_path(&self, name: &TemplateName) -> PathBuf {
        self.dir(name).join("template.json")
    }

    /// The template `name`, if its image exists.
    pub fn get(&self, name: &TemplateName) -> Result<Template, StorageError> {
        let rootfs = self.rootfs_path(name);
        if !rootfs.is_file() {
            return Err(StorageError::TemplateNotFound(name.to_string()));
        }
        let checkpoint = Some(self.checkpoint_dir(name)).filter(|p| p.is_dir());
        let meta = self.read_meta(name)?;
        Ok(Template {
            name: name.clone(),
            dir: self.dir(name),
            rootfs,
            checkpoint,
            meta,
        })
    }

    /// True if the template's image exists.
    pub fn exists(&self, name: &TemplateName) -> bool {
        self.rootfs_path(name).is_file()
    }

    /// Every template with an image, sorted by name (dirs with invalid names are skipped).
    pub fn list(&self) -> Result<Vec<Template>, StorageError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::io("read dir", &self.root)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(StorageError::io("read dir", &self.root))?;
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| TemplateName::new(n).ok())
            else {
                continue;
            };
            match self.get(&name) {
                Ok(t) => out.push(t),
                Err(StorageError::TemplateNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Reads `template.json`; `None` if absent. Unknown versions are refused.
    pub fn read_meta(&self, name: &TemplateName) -> Result<Option<TemplateMeta>, StorageError> {
        let path = self.meta_path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("read", &path)(e)),
        };
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let v: Versioned =
            serde_json::from_slice(&bytes).map_err(|source| StorageError::Metadata {
                path: path.clone(),
                source,
            })?;
        if v.version != TEMPLATE_META_VERSION {
            return Err(StorageError::UnsupportedVersion {
                path,
                version: v.version,
            });
        }
        let meta = serde_json::from_slice(&bytes)
            .map_err(|source| StorageError::Metadata { path, source })?;
        Ok(Some(meta))
    }

    /// Writes `template.json` atomically (creating the template dir if needed).
    pub fn write_meta(&self, name: &TemplateName, meta: &TemplateMeta) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec_pretty(meta).expect("template metadata always serialises");
        write_file_atomic(&self.meta_path(name), &bytes)
    }

    /// Creates an empty staging dir `$DATA/templates/.staging-<name>-<pid>` to build a template
    /// in; [`TemplateStore::commit_staging`] moves it into place, so a half-built template is
    /// never visible under its name.
    pub fn create_staging(&self, name: &TemplateName) -> Result<PathBuf, StorageError> {
        let dir = self
            .root
            .join(format!(".staging-{}-{}", name, std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(StorageError::io("remove", &dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(StorageError::io("create dir", &dir))?;
        Ok(dir)
    }

    /// Moves a staging dir (holding at least `rootfs.ext4`) into place as template `name`,
    /// replacing an existing one only if `replace` is set.
    pub fn commit_staging(
        &self,
        staging: &Path,
        name: &TemplateName,
        replace: bool,
    ) -> Result<Template, StorageError> {
        let dest = self.dir(name);
        if dest.exists() {
            if !replace {
                return Err(StorageError::TemplateExists(name.to_string()));
            }
            self.delete(name)?;
        }
        std::fs::rename(staging, &dest).map_err(StorageError::io("rename", &dest))?;
        std::fs::File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(StorageError::io("fsync dir", &self.root))?;
        self.get(name)
    }

    /// Deletes template `name` (idempotent). The caller makes sure no lease is mounted from it.
    pub fn delete(&self, name: &TemplateName) -> Result<(), StorageError> {
        let dir = self.dir(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("remove", &dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_round_trip() {
        let data = tempfile::tempdir().unwrap();
        let store = TemplateStore::new(data.path());
        let name = TemplateName::new("t1").unwrap();
        assert!(matches!(
            store.get(&name),
            Err(StorageError::TemplateNotFound(_))
        ));
        assert!(store.list().unwrap().is_empty());
        let staging = store.create_staging(&name).unwrap();
        std::fs::write(staging.join("rootfs.ext4"), b"img").unwrap();
        let t = store.commit_staging(&staging, &name, false).unwrap();
        assert_eq!(t.kind(), TemplateKind::Image);
        assert!(t.meta.is_none());
        let mut meta = TemplateMeta::new(TemplateKind::Snapshot);
        meta.vcpus = Some(2);
        store.write_meta(&name, &meta).unwrap();
        assert_eq!(store.read_meta(&name).unwrap(), Some(meta));
        assert_eq!(store.list().unwrap().len(), 1);
        let staging = store.create_staging(&name).unwrap();
        std::fs::write(staging.join("rootfs.ext4"), b"img2").unwrap();
        assert!(matches!(
            store.commit_staging(&staging, &name, false),
            Err(StorageError::TemplateExists(_))
        ));
        store.commit_staging(&staging, &name, true).unwrap();
        assert_eq!(std::fs::read(store.rootfs_path(&name)).unwrap(), b"img2");
        store.delete(&name).unwrap();
        store.delete(&name).unwrap();
        assert!(!store.exists(&name));
    }

    #[test]
    fn unknown_meta_version_refused() {
        let data = tempfile::tempdir().unwrap();
        let store = TemplateStore::new(data.path());
        let name = TemplateName::new("t").unwrap();
        std::fs::create_dir_all(store.dir(&name)).unwrap();
        std::fs::write(store.dir(&name).join("template.json"), br#"{"version":99}"#).unwrap();
        assert!(matches!(
            store.read_meta(&name),
            Err(StorageError::UnsupportedVersion { version: 99, .. })
        ));
    }
}
