//! Known answer: the 512x512 sample frames, preprocessed with `angio_frame`, must equal the rows of the
//! 128x128 validation set they were made from (`val-ids.txt` maps rows to ARCADE ids).

use std::io::Read;
use std::path::PathBuf;

use more_imaging::{ANGIO_SIZE, GrayImage, angio_frame};

fn data_dir() -> PathBuf {
    let dir = std::env::var_os("MORE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    assert!(
        dir.join("angio/samples/labels.csv").exists(),
        "angiography data not found under {} (set MORE_DATA)",
        dir.display()
    );
    dir
}

fn gunzip(path: PathBuf) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    out
}

fn decode_png(path: &std::path::Path) -> GrayImage {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    more_imaging::decode_image(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn samples_match_the_validation_set() {
    let dir = data_dir();
    let images = gunzip(dir.join("angio/val-images-idx3-ubyte.gz"));
    let labels = gunzip(dir.join("angio/val-labels-idx1-ubyte.gz"));
    assert_eq!(&images[..4], &[0, 0, 8, 3]);
    let n = u32::from_be_bytes(images[4..8].try_into().unwrap()) as usize;
    let ids: Vec<String> =
        std::fs::read_to_string(dir.join("angio/val-ids.txt")).unwrap().lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(ids.len(), n);
    let csv = std::fs::read_to_string(dir.join("angio/samples/labels.csv")).unwrap();
    let mut checked = 0;
    let mut max_diff = 0f32;
    for line in csv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (file, view) = line.split_once(',').unwrap();
        // "val-<id>-<view>.png"
        let id = file.trim_start_matches("val-").split('-').next().unwrap();
        let row = ids.iter().position(|x| x == id).unwrap_or_else(|| panic!("id {id} not in val-ids"));
        let want_label = if view.trim() == "RCA" { 1 } else { 0 };
        assert_eq!(labels[8 + row], want_label, "{file}");
        let img = decode_png(&dir.join("angio/samples").join(file));
        assert_eq!((img.width(), img.height()), (512, 512));
        let got = angio_frame(&img, ANGIO_SIZE, ANGIO_SIZE).unwrap();
        let px = ANGIO_SIZE * ANGIO_SIZE;
        let want = &images[16 + row * px..16 + (row + 1) * px];
        let diff = got.iter().zip(want).map(|(a, &b)| (a - b as f32).abs()).fold(0f32, f32::max);
        max_diff = max_diff.max(diff);
        checked += 1;
    }
    eprintln!("checked {checked} sample frames, max |difference| = {max_diff} grey levels");
    assert_eq!(checked, 16);
    assert_eq!(max_diff, 0.0, "preprocessing differs from the training frames");
}
