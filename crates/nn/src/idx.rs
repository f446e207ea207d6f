//! The IDX file format (gzip-compressed) used by MNIST and the angiography frames.
//!
//! Layout: magic `00 00 08 nd` (unsigned bytes, `nd` dimensions), `nd` big-endian `u32` sizes, then the
//! bytes row-major. Files ending in `.gz` are decompressed with `flate2`.

use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3, ArrayD, Axis, IxDyn};

use more_imaging::Normalization;

use crate::error::{Error, Result};

/// Largest decompressed IDX payload accepted (1 GiB).
const MAX_IDX_BYTES: u64 = 1 << 30;

/// Reads an IDX file of unsigned bytes (`.gz` or raw) into an array of its declared shape.
pub fn read_idx(path: impl AsRef<Path>) -> Result<ArrayD<u8>> {
    let path = path.as_ref();
    let err = |reason: String| Error::Data { path: path.display().to_string(), reason };
    let file = std::fs::File::open(path)
        .map_err(|e| err(format!("{e} (the data lives in ../shared/data; pass --data DIR or set MORE_DATA)")))?;
    let mut bytes = Vec::new();
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    reader.take(MAX_IDX_BYTES + 1).read_to_end(&mut bytes).map_err(|e| err(format!("read: {e}")))?;
    parse_idx(&bytes).map_err(err)
}

/// Parses IDX bytes (already decompressed).
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<ArrayD<u8>, String> {
    if bytes.len() as u64 > MAX_IDX_BYTES {
        return Err("file too large".into());
    }
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err("not an IDX file (bad magic)".into());
    }
    if bytes[2] != 0x08 {
        return Err(format!("unsupported IDX element type 0x{:02x} (only unsigned bytes)", bytes[2]));
    }
    let nd = bytes[3] as usize;
    if nd == 0 || nd > 4 || bytes.len() < 4 + 4 * nd {
        return Err(format!("bad IDX dimension count {nd}"));
    }
    let dims: Vec<usize> = (0..nd)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("IDX size overflows")?;
    let payload = &bytes[4 + 4 * nd..];
    if payload.len() != n {
        return Err(format!("IDX declares {dims:?} ({n} bytes) but holds {} bytes", payload.len()));
    }
    // A zero dimension makes the element count 0 whatever the others are, but ndarray still refuses a
    // shape whose other dimensions overflow `isize`: an error, not a panic.
    ArrayD::from_shape_vec(IxDyn(&dims), payload.to_vec()).map_err(|e| format!("IDX shape {dims:?}: {e}"))
}

/// A labelled image set: `images[N, H, W]` (raw bytes) and `labels[N]`.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Raw pixels.
    pub images: Array3<u8>,
    /// Class labels.
    pub labels: Vec<u8>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` images (or all).
    pub fn take(&self, n: usize) -> ImageSet {
        let n = n.min(self.len());
        ImageSet {
            images: self.images.slice_axis(Axis(0), (0..n).into()).to_owned(),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// Images as `f32` `[N, 1, H, W]`, each pixel normalised by `norm` (the project's one normalisation,
    /// `more_imaging::Normalization`: `(p·scale − mean)/std`).
    pub fn inputs(&self, norm: &Normalization) -> Result<ArrayD<f32>> {
        let (n, h, w) = self.images.dim();
        let mut x: Vec<f32> = self.images.iter().map(|&p| f32::from(p)).collect();
        norm.apply(&mut x).map_err(|e| Error::InvalidModel(format!("input normalisation: {e}")))?;
        Ok(ArrayD::from_shape_vec(IxDyn(&[n, 1, h, w]), x).expect("sizes match"))
    }

    /// Images as `f32` `[N, 1, H, W]` with pixels scaled to `[0, 1]` (`p / 255`).
    pub fn unit_inputs(&self) -> ArrayD<f32> {
        let unit = Normalization { scale: 1.0 / 255.0, ..Normalization::default() };
        self.inputs(&unit).expect("a scale without mean or std always applies")
    }

    /// One-hot targets `[N, classes]`.
    pub fn one_hot(&self, classes: usize) -> Array2<f32> {
        let mut t = Array2::zeros((self.len(), classes));
        for (i, &l) in self.labels.iter().enumerate() {
            if (l as usize) < classes {
                t[[i, l as usize]] = 1.0;
            }
        }
        t
    }
}

/// Media type of [`ImageSet::to_bytes`].
pub const LABELLED_IMAGES_MEDIA_TYPE: &str = "application/x-more-labelled-images";

const LABELLED_MAGIC: &[u8; 8] = b"MORELBL1";

impl ImageSet {
    /// The set as one body (media type [`LABELLED_IMAGES_MEDIA_TYPE`]): magic `MORELBL1`, the count, rows
    /// and columns as little-endian `u32`, the `count` labels (one byte each), then the pixels row-major
    /// (one byte each).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.range_bytes(0, self.len())
    }

    /// [`ImageSet::to_bytes`] of images `start..start + count` (clipped to the set), written straight from
    /// this set.
    pub fn range_bytes(&self, start: usize, count: usize) -> Vec<u8> {
        let (_, h, w) = self.images.dim();
        let start = start.min(self.len());
        let end = start.saturating_add(count).min(self.len());
        let n = end - start;
        let mut out = Vec::with_capacity(20 + n * (1 + h * w));
        out.extend_from_slice(LABELLED_MAGIC);
        for d in [n, h, w] {
            out.extend_from_slice(&(d as u32).to_le_bytes());
        }
        out.extend_from_slice(&self.labels[start..end]);
        out.extend(self.images.slice_axis(Axis(0), (start..end).into()).iter());
        out
    }

    /// Parses [`ImageSet::to_bytes`] output; a body over `max_bytes`, a bad header or a size that does not
    /// match the declared count and image size is an error.
    pub fn from_bytes(bytes: &[u8], max_bytes: usize) -> std::result::Result<ImageSet, String> {
        if bytes.len() > max_bytes {
            return Err(format!("{} bytes, more than the limit of {max_bytes}", bytes.len()));
        }
        if bytes.len() < 20 || &bytes[..8] != LABELLED_MAGIC {
            return Err("not a labelled image set (bad magic)".into());
        }
        let dim = |i: usize| u32::from_le_bytes(bytes[8 + 4 * i..12 + 4 * i].try_into().expect("4 bytes")) as usize;
        let (n, h, w) = (dim(0), dim(1), dim(2));
        let size = h.checked_mul(w).and_then(|p| p.checked_add(1)).and_then(|p| p.checked_mul(n));
        if size != Some(bytes.len() - 20) {
            return Err(format!(
                "declares {n} images of {h}x{w} but holds {} bytes after the header",
                bytes.len() - 20
            ));
        }
        let labels = bytes[20..20 + n].to_vec();
        let images = Array3::from_shape_vec((n, h, w), bytes[20 + n..].to_vec()).map_err(|e| e.to_string())?;
        Ok(ImageSet { images, labels })
    }

    /// Images `start..start + count` (clipped to the set).
    pub fn range(&self, start: usize, count: usize) -> ImageSet {
        let start = start.min(self.len());
        let end = start.saturating_add(count).min(self.len());
        ImageSet {
            images: self.images.slice_axis(Axis(0), (start..end).into()).to_owned(),
            labels: self.labels[start..end].to_vec(),
        }
    }
}

/// Reads `{dir}/{prefix}-images-idx3-ubyte.gz` and `{dir}/{prefix}-labels-idx1-ubyte.gz`.
pub fn load_image_set(dir: impl AsRef<Path>, prefix: &str) -> Result<ImageSet> {
    let dir = dir.as_ref();
    let ipath = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
    let lpath = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
    let images = read_idx(&ipath)?;
    let labels = read_idx(&lpath)?;
    let err = |p: &PathBuf, reason: String| Error::Data { path: p.display().to_string(), reason };
    let images =
        images.into_dimensionality::<ndarray::Ix3>().map_err(|_| err(&ipath, "expected 3 dimensions".into()))?;
    if labels.ndim() != 1 {
        return Err(err(&lpath, "expected 1 dimension".into()));
    }
    if labels.len() != images.dim().0 {
        return Err(err(&lpath, format!("{} labels for {} images", labels.len(), images.dim().0)));
    }
    Ok(ImageSet { images, labels: labels.into_raw_vec_and_offset().0 })
}

/// The MNIST split `"train"` (60,000) or `"test"` (10,000) from `{data}/mnist`.
pub fn load_mnist(data: impl AsRef<Path>, split: &str) -> Result<ImageSet> {
    let prefix = match split {
        "test" | "t10k" => "t10k",
        _ => "train",
    };
    load_image_set(data.as_ref().join("mnist"), prefix)
}

/// The angiography split `"train"` (1,000) or `"val"` (200) from `{data}/angio`, 128x128, 0 = LCA, 1 = RCA.
pub fn load_angio(data: impl AsRef<Path>, split: &str) -> Result<ImageSet> {
    load_image_set(data.as_ref().join("angio"), split)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: a zero dimension next to huge ones declares 0 bytes, which passed the size check,
    /// and ndarray's shape check then panicked.
    #[test]
    fn zero_dimension_with_huge_ones_is_an_error() {
        let bytes = [0, 0, 8, 3, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(parse_idx(&bytes).unwrap_err().contains("IDX shape"));
    }

    #[test]
    fn parses_a_small_file_and_rejects_bad_ones() {
        let mut ok = vec![0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        ok.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        let a = parse_idx(&ok).unwrap();
        assert_eq!(a.shape(), &[2, 3]);
        assert_eq!(a[[1, 2]], 6);
        assert!(parse_idx(&ok[..ok.len() - 1]).unwrap_err().contains("holds 5 bytes"));
        assert!(parse_idx(&[1, 0, 8, 1]).is_err());
        assert!(parse_idx(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap_err().contains("element type"));
        assert!(parse_idx(&[0, 0, 8, 9]).is_err());
        assert!(parse_idx(&[0, 0, 8, 2, 255, 255, 255, 255, 255, 255, 255, 255]).is_err());
        assert!(parse_idx(&[]).is_err());
    }

    #[test]
    fn labelled_images_round_trip_and_bad_bodies_are_refused() {
        let set = ImageSet {
            images: Array3::from_shape_fn((3, 2, 4), |(i, y, x)| (i * 8 + y * 4 + x) as u8),
            labels: vec![7, 0, 9],
        };
        let b = set.to_bytes();
        assert_eq!(b.len(), 20 + 3 + 24);
        let back = ImageSet::from_bytes(&b, 1 << 20).unwrap();
        assert_eq!((back.images, back.labels), (set.images.clone(), set.labels.clone()));
        assert_eq!(set.range(1, 5).labels, vec![0, 9]);
        assert_eq!(set.range_bytes(1, 5), set.range(1, 5).to_bytes());
        assert_eq!(set.range(9, 5).len(), 0);
        assert!(ImageSet::from_bytes(&b[..b.len() - 1], 1 << 20).unwrap_err().contains("holds"));
        assert!(ImageSet::from_bytes(&b, 10).unwrap_err().contains("limit"));
        assert!(ImageSet::from_bytes(b"MORELBL2", 1 << 20).unwrap_err().contains("magic"));
        let mut huge = b[..20].to_vec();
        huge[8..20].copy_from_slice(&[0xff; 12]);
        assert!(ImageSet::from_bytes(&huge, 1 << 20).is_err());
    }

    #[test]
    fn missing_files_name_the_data_directory() {
        let e = load_mnist("/nonexistent-dir", "train").unwrap_err().to_string();
        assert!(e.contains("/nonexistent-dir/mnist/train-images-idx3-ubyte.gz"), "{e}");
        assert!(e.contains("MORE_DATA"), "{e}");
    }

    /// The shared data: env `MORE_DATA`, else `../shared/data` beside the repository.
    fn data_dir() -> PathBuf {
        std::env::var_os("MORE_DATA")
            .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"), PathBuf::from)
    }

    #[test]
    fn loads_mnist_test_labels_and_angio_val() {
        let dir = data_dir();
        let t = load_mnist(&dir, "test").expect("MNIST must be in ../shared/data/mnist");
        assert_eq!(t.images.dim(), (10_000, 28, 28));
        assert!(t.labels.iter().all(|&l| l < 10));
        let v = load_angio(&dir, "val").expect("angiography frames must be in ../shared/data/angio");
        assert_eq!(v.images.dim(), (200, 128, 128));
        assert_eq!(v.labels.iter().filter(|&&l| l == 1).count(), 66);
    }
}
