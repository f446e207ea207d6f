//! Angiography on small subsets: the shipped model's metadata, the sample frames preprocessed as
//! the metadata says (what the browser and server do) equal their val rows, and plaintext vs encrypted
//! inference agree; `more eval|bench angio` from the repository root.

use std::path::PathBuf;
use std::process::Command;

use more_core::{KeyOptions, SecretKey};
use more_imaging::{GrayImage, Normalization, preprocess};
use more_nn::Model;
use ndarray::{ArrayD, Axis, IxDyn};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn data_dir() -> PathBuf {
    let dir = std::env::var_os("MORE_DATA").map(PathBuf::from).unwrap_or_else(|| root().join("../shared/data"));
    assert!(dir.join("angio/samples/labels.csv").exists(), "angiography data not found under {}", dir.display());
    dir
}

fn more(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_more")).args(args).current_dir(root()).output().expect("runs");
    assert!(out.status.success(), "more {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn model() -> Model {
    Model::load(root().join("models/angio-cnn.morenn")).expect("models/angio-cnn.morenn")
}

fn decode_png(path: &std::path::Path) -> GrayImage {
    more_imaging::decode_image(&std::fs::read(path).unwrap()).unwrap()
}

fn argmax(v: &[f32]) -> usize {
    usize::from(v[1] > v[0])
}

#[test]
fn shipped_model_describes_itself() {
    let m = model();
    let meta = m.meta();
    assert_eq!(meta.task, "angio");
    assert_eq!(meta.input_shape, vec![1, 128, 128]);
    assert_eq!(meta.preprocessing.kind, "angio-frame");
    assert_eq!(meta.preprocessing.resize, Some([128, 128]));
    assert_eq!(meta.labels, vec!["LCA".to_string(), "RCA".to_string()]);
    assert!(meta.metrics["val_accuracy"] >= 0.92, "{:?}", meta.metrics);
    assert!(meta.metrics["val_balanced_accuracy"] >= 0.90, "{:?}", meta.metrics);
}

#[test]
fn sample_frames_preprocess_to_val_rows_and_classify_alike_on_ciphertexts() {
    let dir = data_dir();
    let m = model();
    let pre = &m.meta().preprocessing;
    let norm = Normalization::new(pre.scale, pre.mean.clone(), pre.std.clone()).unwrap();
    let val = more_nn::idx::load_angio(&dir, "val").unwrap();
    let x_val = val.inputs(&norm).unwrap();
    let ids: Vec<String> =
        std::fs::read_to_string(dir.join("angio/val-ids.txt")).unwrap().lines().map(|l| l.trim().into()).collect();
    let csv = std::fs::read_to_string(dir.join("angio/samples/labels.csv")).unwrap();
    let (mut checked, mut right) = (0, 0);
    for line in csv.lines().skip(1).filter(|l| !l.trim().is_empty()).take(6) {
        let (file, view) = line.split_once(',').unwrap();
        let id = file.trim_start_matches("val-").split('-').next().unwrap();
        let row = ids.iter().position(|x| x == id).unwrap();
        let img = decode_png(&dir.join("angio/samples").join(file));
        let x = preprocess(&pre.kind, &img, pre.resize, &norm).unwrap();
        let want = x_val.index_axis(Axis(0), row);
        let diff = x.iter().zip(want.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-6, "{file}: preprocessing differs from val row {row} by {diff}");
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 128, 128]), x).unwrap();
        let plain = m.forward_plain(x.view()).unwrap();
        assert_eq!(plain.shape(), &[1, 2]);
        let key = SecretKey::generate(KeyOptions::default()).unwrap();
        let enc = key.decrypt_tensor(&m.forward_encrypted(&key.encrypt_tensor(&x.view()).unwrap()).unwrap());
        let p: Vec<f32> = plain.iter().copied().collect();
        let e: Vec<f32> = enc.iter().copied().collect();
        assert!(p.iter().zip(&e).all(|(a, b)| (a - b).abs() < 1e-3), "{file}: {p:?} vs {e:?}");
        assert_eq!(argmax(&p), argmax(&e), "{file}");
        right += usize::from(m.meta().labels[argmax(&p)] == view.trim());
        checked += 1;
    }
    assert_eq!(checked, 6);
    assert!(right >= 5, "{right}/6 sample frames classified right");
}

#[test]
fn eval_encrypted_agrees_on_a_val_subset() {
    let text = more(&["eval", "angio", "--model", "models/angio-cnn.morenn", "--encrypted", "--limit", "12", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["images"], 12);
    assert_eq!(v["argmax_agreement"], 12);
    assert!(v["max_logit_diff"].as_f64().unwrap() < 1e-3, "{v}");
    assert_eq!(v["plain_accuracy"], v["encrypted_accuracy"]);
}

#[test]
fn bench_json_has_the_mnist_keys() {
    let v: serde_json::Value = serde_json::from_str(&more(&["bench", "angio", "--seconds", "0.01", "--json"])).unwrap();
    for key in ["model", "encrypted_us_per_image", "plain_us_per_image", "encrypt_us", "decrypt_us", "ciphertext_bytes"]
    {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["model"], "angio-cnn");
    assert!(v["ciphertext_bytes"].as_u64().unwrap() > 4 * 128 * 128 * 4, "{v}");
}

/// `more train angio` and `more train angio --encrypted` on 24 frames, one epoch each: both write a model
/// the server can load (task, shape, labels, preprocessing, val metrics); the encrypted run also writes the
/// still-encrypted model and an owner-only key file.
#[test]
fn train_angio_plain_and_encrypted_on_a_subset() {
    let dir = std::env::temp_dir().join(format!("more-angio-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for encrypted in [false, true] {
        let out = dir.join(if encrypted { "enc.morenn" } else { "plain.morenn" });
        let out_s = out.to_str().unwrap();
        let mut args = vec!["train", "angio", "--limit", "24", "--epochs", "1", "--quiet", "--out", out_s];
        if encrypted {
            args.push("--encrypted");
        }
        more(&args);
        let m = Model::load(&out).unwrap_or_else(|e| panic!("{out_s}: {e}"));
        let meta = m.meta();
        assert_eq!(meta.task, "angio");
        assert_eq!(meta.input_shape, vec![1, 128, 128]);
        assert_eq!(meta.preprocessing.kind, "angio-frame");
        assert_eq!(meta.labels, vec!["LCA".to_string(), "RCA".to_string()]);
        let acc = meta.metrics["val_accuracy"];
        assert!((0.0..=1.0).contains(&acc), "{:?}", meta.metrics);
        if encrypted {
            assert!(out.with_extension("moreenc").exists(), "no .moreenc next to {out_s}");
            let key = dir.join("enc.key.json");
            assert!(key.exists(), "no key file in {}", dir.display());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(
                    std::fs::metadata(&key).unwrap().permissions().mode() & 0o077,
                    0,
                    "key file readable by others"
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `more reproduce angio --json` on 24 frames: both runs, both inference engines, agreement on every frame.
#[test]
fn reproduce_angio_json_on_a_subset() {
    let svg = std::env::temp_dir().join(format!("more-angio-curves-{}.svg", std::process::id()));
    let text =
        more(&["reproduce", "angio", "--limit", "24", "--epochs", "1", "--json", "--svg", svg.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let figure = std::fs::read_to_string(&svg).expect("the --svg figure is written");
    std::fs::remove_file(&svg).unwrap();
    assert!(figure.starts_with("<svg") && figure.matches("<polyline").count() == 4, "{figure}");
    assert_eq!(v["plain_history"]["epochs"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["val_frames"], 200);
    for key in ["val_accuracy", "val_balanced_accuracy", "epoch_wall_seconds", "inference_ms_per_frame_serving_engine"]
    {
        let pair = &v[key];
        assert!(pair["plain"].as_f64().unwrap() > 0.0 && pair["encrypted"].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
    // Same seed, data and hyper-parameters: one epoch on ciphertexts decrypts to the plaintext run's model.
    assert!(v["accuracy_gap_pp"].as_f64().unwrap().abs() <= 1.0, "{v}");
    assert_eq!(v["encrypted_model_argmax_agreement"], 200, "{v}");
    assert_eq!(v["encrypted_inference_argmax_agreement"], 200, "{v}");
}
