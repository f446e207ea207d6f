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

/// The angiogram views under BFV, end to end on three val frames: one JSON line with the figures, every
/// encrypted answer equal to the integer network's.
#[test]
fn bench_bfv_task_angio_prints_one_json_line() {
    data_dir();
    let text = more(&["bench", "bfv", "--task", "angio", "--json", "--limit", "3"]);
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((v["task"].as_str(), v["model"].as_str()), (Some("angio"), Some("angio-bfv-square")));
    assert_eq!(
        (v["images"].as_u64(), v["argmax_agreement"].as_u64(), v["exact_logits"].as_u64()),
        (Some(3), Some(3), Some(3))
    );
    assert_eq!((v["security_bits"].as_u64(), v["ring_degree"].as_u64()), (Some(128), Some(8192)));
    assert_eq!((v["classes"].as_u64(), v["result_ciphertexts"].as_u64()), (Some(2), Some(1)));
    assert!(v["accuracy"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "{v}");
    for key in ["ms_per_image", "eval_key_bytes", "ciphertext_bytes", "integer_val_accuracy"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
}

/// `more eval angio --scheme bfv` on four val frames: BFV equals the integer network on each.
#[test]
fn eval_angio_under_bfv_agrees_with_the_integer_network() {
    data_dir();
    let text = more(&["eval", "angio", "--scheme", "bfv", "--limit", "4", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((v["task"].as_str(), v["split"].as_str(), v["images"].as_u64()), (Some("angio"), Some("val"), Some(4)));
    assert_eq!((v["argmax_agreement"].as_u64(), v["exact_logits"].as_u64()), (Some(4), Some(4)));
    assert_eq!(v["accuracy"], v["integer_accuracy"]);
    assert!(v["largest_magnitude"].as_u64().unwrap() < v["half_plaintext_modulus"].as_u64().unwrap());
}

/// The bundled BFV model: the angio task's labels, two classes, the float model's recipe, and the measured
/// figures the docs quote (quantized network and BFV at 97% or better, identical to each other on every
/// val frame, no value near t/2 on any training or val frame).
#[test]
fn the_bundled_bfv_model_describes_itself() {
    let m = more_bfv::BfvModel::load(root().join("models/angio-bfv-square.bfv.json")).unwrap();
    assert_eq!((m.task.as_str(), m.labels.clone()), ("angio", vec!["LCA".to_string(), "RCA".to_string()]));
    assert_eq!(m.network.classes(), 2);
    assert!(m.metrics["integer_val_accuracy"] >= 0.97, "{:?}", m.metrics);
    assert_eq!(m.metrics["bfv_val_accuracy"], m.metrics["integer_val_accuracy"]);
    assert_eq!((m.metrics["bfv_exact_logits"], m.metrics["integer_val_images"]), (200.0, 200.0));
    assert!(m.metrics["headroom_bits"] >= 1.0, "{:?}", m.metrics);
    assert!(m.quantization["wrap_around"].contains("1000 train + 200 val"), "{:?}", m.quantization);
}

/// `more train angio --arch bfv` on a subset, then `more bfv quantize` of it: a 28x28 float model with
/// the `angio-bfv` preprocessing, and a `.bfv.json` model of the angio task checked on every frame (small
/// levels, so that a barely trained network cannot wrap).
#[test]
#[ignore = "slow: quantizing runs BFV on all 200 val frames (about 20 s on two cores); cargo test -- --ignored"]
fn train_angio_bfv_then_quantize_on_a_subset() {
    let data = data_dir();
    let dir = std::env::temp_dir().join(format!("more-angio-bfv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (float, quantized) = (dir.join("float.morenn"), dir.join("square.bfv.json"));
    let data = data.to_str().unwrap();
    more(&[
        "train",
        "angio",
        "--arch",
        "bfv",
        "--limit",
        "120",
        "--epochs",
        "2",
        "--data",
        data,
        "--quiet",
        "--out",
        float.to_str().unwrap(),
    ]);
    let m = Model::load(&float).unwrap();
    assert_eq!((m.meta().task.as_str(), m.input_shape()), ("angio", &[1usize, 28, 28][..]));
    assert_eq!(m.meta().preprocessing.kind, more_imaging::ANGIO_BFV_KIND);
    assert!(m.meta().training["optimizer"].starts_with("adam lr 0.001"), "{:?}", m.meta().training);
    let (float, out) = (float.to_str().unwrap(), quantized.to_str().unwrap());
    let text = more(&["bfv", "quantize", "--model", float, "--data", data, "--conv-levels", "8", "--out", out]);
    assert!(text.contains("1000 train + 200 val frames"), "{text}");
    let q = more_bfv::BfvModel::load(&quantized).unwrap();
    assert_eq!((q.task.as_str(), q.id.as_str(), q.network.classes()), ("angio", "angio-bfv-square", 2));
    assert_eq!(q.quantization["conv_weights"], "integers in [-8, 8]");
    assert_eq!(q.quantization["dense_weights"], "integers in [-31, 31]", "the task's default");
    assert_eq!(q.metrics["bfv_exact_logits"], 200.0);
    std::fs::remove_dir_all(&dir).unwrap();
}
