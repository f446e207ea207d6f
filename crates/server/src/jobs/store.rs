//! A job on disk: `<jobs-dir>/<id>/job.json` (its [`Record`]), `data.bin` (the upload as received) and,
//! once trained, `model.moreenc`. Records are replaced atomically (written aside, then renamed), so a
//! crash leaves the old or the new one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use more_enctrain::upload::JobRequest;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for the training thread.
    Queued,
    /// Training.
    Running,
    /// Trained: the model can be downloaded (once).
    Done,
    /// Training failed (the record says why); kept until its time to live ends.
    Failed,
}

impl State {
    /// Queued, running or done: the job still counts against the limits.
    pub fn holds_resources(self) -> bool {
        self != State::Failed
    }
}

/// What is kept of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The job's id (its directory's name).
    pub id: String,
    /// The client that posted it (its address).
    pub client: String,
    /// The header of the upload.
    pub request: JobRequest,
    /// Training rows.
    pub rows: usize,
    /// Bytes uploaded.
    pub upload_bytes: usize,
    /// Estimated memory while training, bytes.
    pub memory_bytes: usize,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// State.
    pub state: State,
    /// Why it failed (code and message).
    pub error: Option<(String, String)>,
    /// How many times training was started (a restart during training starts it again).
    pub attempts: u32,
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The files of one job.
#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
}

impl Files {
    /// The files of job `id` under `root`.
    pub fn new(root: &Path, id: &str) -> Self {
        Files { dir: root.join(id) }
    }

    /// The job's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The upload.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data.bin")
    }

    /// The trained, still encrypted model.
    pub fn model(&self) -> PathBuf {
        self.dir.join("model.moreenc")
    }

    fn record(&self) -> PathBuf {
        self.dir.join("job.json")
    }

    /// Creates the directory and writes the upload and the record.
    pub fn create(&self, record: &Record, data: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.data(), data)?;
        self.save(record)
    }

    /// Replaces the record.
    pub fn save(&self, record: &Record) -> std::io::Result<()> {
        let tmp = self.dir.join("job.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, self.record())
    }

    /// Reads the record.
    pub fn load(&self) -> std::io::Result<Record> {
        serde_json::from_slice(&std::fs::read(self.record())?).map_err(std::io::Error::other)
    }

    /// Deletes everything of the job.
    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            let job = self.dir.file_name().map(|n| super::tag(&n.to_string_lossy())).unwrap_or_default();
            tracing::warn!(job, error = %e, "cannot delete a job's files");
        }
    }
}
