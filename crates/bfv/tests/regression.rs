//! The regression network (the WBC surrogate's shape, 7 → 8 → square → 6, two limbs per output) end to end
//! on the real parameters: a few patients through keys, encryption, the wire format, the server's
//! evaluation and decryption equal the exact integer network; mismatched inputs and model files are refused.

use more_bfv::batch::{BATCH_INPUT_LEVEL, BATCH_OUTPUT_LEVEL, BATCH_SLOTS};
use more_bfv::model::{BfvModel, BfvRegressionModel, peek_task};
use more_bfv::regression::{FloatWeights, RegressionNet, RegressionScaling};
use more_bfv::wire::{decode_batch_keys, decode_ciphertexts, encode_batch_keys, encode_ciphertexts};
use more_bfv::{Client, RegressionEvaluator};
use rand::{Rng, SeedableRng};

const INPUTS: usize = 7;
const HIDDEN: usize = 8;
const OUTPUTS: usize = 6;

/// A quantized network from random float weights, with a box of `[-1, 1]` per (already standardised)
/// input.
fn random_net(seed: u64, limbs: usize) -> (RegressionNet, FloatWeights) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut draw = |n: usize| (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
    let float = FloatWeights {
        hidden_weight: draw(HIDDEN * INPUTS),
        hidden_bias: draw(HIDDEN),
        output_weight: draw(OUTPUTS * HIDDEN),
        output_bias: draw(OUTPUTS),
    };
    let template = RegressionNet {
        inputs: INPUTS,
        hidden: HIDDEN,
        outputs: OUTPUTS,
        scaling: RegressionScaling {
            input_min: vec![-1.0; INPUTS],
            input_max: vec![1.0; INPUTS],
            input_mean: vec![0.0; INPUTS],
            input_std: vec![1.0; INPUTS],
            input_scale: 1.0,
            output_divisor: vec![],
            output_limbs: 1,
            limb_bits: 0,
            output_scale: vec![1.0; OUTPUTS],
            output_offset: vec![0.0; OUTPUTS],
        },
        hidden_weight: vec![],
        hidden_bias: vec![],
        output_weight: vec![],
        output_bias: vec![],
    };
    (RegressionNet::quantize(&float.view(), &template, 64.0, 63, limbs).unwrap(), float)
}

#[test]
fn patients_under_bfv_equal_the_integer_network() {
    let (net, float) = random_net(11, 2);
    assert_eq!(net.result_ciphertexts(), 2 * OUTPUTS);
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    // Random patients and the corners of the box, where the worst case lives.
    let mut patients: Vec<Vec<f64>> =
        (0..3).map(|_| (0..INPUTS).map(|_| rng.random_range(-1.0..=1.0)).collect()).collect();
    patients.push(vec![1.0; INPUTS]);
    patients.push(vec![-1.0; INPUTS]);
    let xs: Vec<Vec<i64>> = patients.iter().map(|p| net.scaling.quantize_input(p).unwrap()).collect();
    let expect: Vec<Vec<i64>> = xs.iter().map(|x| net.forward(x).0).collect();
    // The integer network is the float network up to rounding (coarse here: random weights cancel a lot).
    for (p, y) in patients.iter().zip(&expect) {
        let (f, got) = (float.view().forward(p), net.scaling.decode(y));
        for k in 0..OUTPUTS {
            assert!((f[k] - got[k]).abs() < 0.2 * (1.0 + f[k].abs()), "output {k}: {} vs {}", got[k], f[k]);
        }
    }

    let client = Client::from_seed([5; 32]);
    let keys = decode_batch_keys(&encode_batch_keys(&client.batch_keys(&mut rand::rng()).unwrap())).unwrap();
    let ev = RegressionEvaluator::new(&net).unwrap();
    // All patients at once (one per slot), and the first one alone.
    for batch in [&xs[..], &xs[..1]] {
        let upload =
            encode_ciphertexts(&client.encrypt_samples(batch, INPUTS, &mut rand::rng()).unwrap(), BATCH_INPUT_LEVEL);
        let inputs = decode_ciphertexts(&upload, INPUTS, BATCH_INPUT_LEVEL).unwrap();
        let out = encode_ciphertexts(&ev.evaluate(&keys, &inputs).unwrap(), BATCH_OUTPUT_LEVEL);
        let out = decode_ciphertexts(&out, net.result_ciphertexts(), BATCH_OUTPUT_LEVEL).unwrap();
        let got = client.decrypt_samples(&out, net.result_ciphertexts(), batch.len()).unwrap();
        assert_eq!(got, expect[..batch.len()]);
    }
}

#[test]
fn wrong_inputs_shapes_and_model_files_are_refused() {
    let (net, float) = random_net(3, 1);
    let client = Client::from_seed([6; 32]);
    let mut rng = rand::rng();
    let keys = client.batch_keys(&mut rng).unwrap();
    let ev = RegressionEvaluator::new(&net).unwrap();
    // Samples: none, too many, the wrong width.
    assert!(client.encrypt_samples(&[], INPUTS, &mut rng).is_err());
    assert!(client.encrypt_samples(&vec![vec![0; INPUTS]; BATCH_SLOTS + 1], INPUTS, &mut rng).is_err());
    assert!(client.encrypt_samples(&[vec![0; INPUTS - 1]], INPUTS, &mut rng).is_err());
    // Ciphertexts: too few, or at the wrong level (the single-image packing's full modulus).
    let cts = client.encrypt_samples(&[vec![1; INPUTS]], INPUTS, &mut rng).unwrap();
    assert!(ev.evaluate(&keys, &cts[..INPUTS - 1]).is_err());
    let full = client.encrypt(&[0; 784], &mut rng).unwrap();
    assert!(ev.evaluate(&keys, &full).is_err());
    // The wire refuses another count or level before parsing ciphertexts.
    let bytes = encode_ciphertexts(&cts, BATCH_INPUT_LEVEL);
    assert!(decode_ciphertexts(&bytes, INPUTS + 1, BATCH_INPUT_LEVEL).is_err());
    assert!(decode_ciphertexts(&bytes, INPUTS, BATCH_OUTPUT_LEVEL).is_err());
    // Decryption checks its counts.
    let out = ev.evaluate(&keys, &cts).unwrap();
    assert!(client.decrypt_samples(&out, OUTPUTS, 0).is_err());
    assert!(client.decrypt_samples(&out[..OUTPUTS - 1], OUTPUTS, 1).is_err());
    // Inputs outside the box and networks that could wrap around are refused.
    assert!(net.scaling.quantize_input(&[1.5; INPUTS]).is_err());
    let mut wraps = net.clone();
    wraps.output_weight[0] = 1 << 50;
    assert!(RegressionEvaluator::new(&wraps).is_err());
    let mut short = net.clone();
    short.hidden_bias.pop();
    assert!(RegressionEvaluator::new(&short).is_err());

    // Model files: each kind refuses the other, and the bundled MNIST model still loads as a classifier.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let mnist = std::fs::read(root.join("mnist-bfv-square.bfv.json")).unwrap();
    assert_eq!(peek_task(&mnist).unwrap(), "mnist");
    BfvModel::from_json(&mnist).unwrap();
    assert!(BfvRegressionModel::from_json(&mnist).is_err());
    let model = BfvRegressionModel {
        format: more_bfv::model::FORMAT.into(),
        version: more_bfv::model::VERSION,
        id: "test".into(),
        task: "wbc".into(),
        description: String::new(),
        architecture: String::new(),
        scheme: more_bfv::params::scheme_info(),
        quantization: Default::default(),
        ranges: net.box_ranges(),
        sample_ranges: Default::default(),
        metrics: Default::default(),
        training: Default::default(),
        input_names: vec!["x".into(); INPUTS],
        labels: vec!["y".into(); OUTPUTS],
        units: vec!["u".into(); OUTPUTS],
        network: net,
        float_network: float,
    };
    let json = serde_json::to_vec(&model).unwrap();
    BfvRegressionModel::from_json(&json).unwrap();
    let err = BfvModel::from_json(&json).unwrap_err().to_string();
    assert!(err.contains("regression model"), "{err}");
    let mut other = model.clone();
    other.scheme.plaintext_modulus = 65537;
    assert!(BfvRegressionModel::from_json(&serde_json::to_vec(&other).unwrap()).is_err());
    let mut names = model;
    names.labels.pop();
    assert!(BfvRegressionModel::from_json(&serde_json::to_vec(&names).unwrap()).is_err());
}

/// The client-side scaling on its own, as the server lists it and the page reads it: the shipped model's
/// file keeps its format (the scaling's fields flattened beside the weights), the listed JSON carries
/// exactly the scaling's fields, and quantizing and decoding from that JSON alone agree with the network.
#[test]
fn the_scaling_alone_quantizes_and_decodes_like_the_network() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/wbc-bfv-square.bfv.json");
    let bytes = std::fs::read(&path).unwrap();
    let model = BfvRegressionModel::from_json(&bytes).unwrap();
    let net = &model.network;
    // The model file's `network` object is what RegressionNet writes: no field moved or renamed.
    let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(serde_json::to_value(net).unwrap(), file["network"]);

    // The scaling alone, through JSON (as GET /api/v1/models lists it).
    let listed = serde_json::to_value(&net.scaling).unwrap();
    let names: Vec<&str> = listed.as_object().unwrap().keys().map(String::as_str).collect();
    for name in &names {
        assert_eq!(listed[name], file["network"][name], "{name}");
    }
    assert_eq!(names.len(), 10, "{names:?}");
    let scaling: RegressionScaling = serde_json::from_value(listed).unwrap();
    scaling.validate().unwrap();
    assert_eq!((scaling.inputs(), scaling.outputs()), (net.inputs, net.outputs));
    assert_eq!(scaling.result_ciphertexts(), net.result_ciphertexts());

    // Patients across the box, its corners included: the same integers in, the same values out.
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let (lo, hi) = (&scaling.input_min, &scaling.input_max);
    let mut patients: Vec<Vec<f64>> =
        (0..20).map(|_| (0..net.inputs).map(|i| rng.random_range(lo[i]..=hi[i])).collect()).collect();
    patients.push(lo.clone());
    patients.push(hi.clone());
    for p in &patients {
        let x = scaling.quantize_input(p).unwrap();
        assert_eq!(x, net.scaling.quantize_input(p).unwrap());
        // X is the standardised value times the input scale, rounded.
        for (xi, z) in x.iter().zip(scaling.standardise(p)) {
            assert!((*xi as f64 - z * scaling.input_scale).abs() <= 0.5, "{xi} vs {z}");
        }
        let (limbs, _) = net.forward(&x);
        let physical = scaling.decode(&limbs);
        assert_eq!(physical, net.scaling.decode(&limbs));
        // Limbs add up to Y_k; Y_k / divisor_k · scale_k + offset_k is the physical value.
        let y = scaling.combine(&limbs);
        for k in 0..net.outputs {
            let expect = y[k] as f64 / scaling.output_divisor[k] * scaling.output_scale[k] + scaling.output_offset[k];
            assert!((physical[k] - expect).abs() <= 1e-9 * expect.abs().max(1.0), "output {k}");
        }
        assert_eq!(scaling.physical(&scaling.standardised_outputs(&limbs)), physical);
    }

    // Outside the box, not finite, or the wrong count: refused with an input error, never clamped.
    let mut above = hi.clone();
    above[3] += 1e-9 * above[3].abs().max(1.0);
    let mut below = lo.clone();
    below[0] -= 1.0;
    let mut nan = lo.clone();
    nan[6] = f64::NAN;
    for bad in [above, below, nan, lo[..net.inputs - 1].to_vec()] {
        assert!(matches!(scaling.quantize_input(&bad), Err(more_bfv::BfvError::Input(_))), "{bad:?}");
    }
    // A scaling whose lists disagree, or with a zero standard deviation or too many limbs, is refused.
    let mut short = scaling.clone();
    short.output_offset.pop();
    assert!(short.validate().is_err());
    let mut flat = scaling.clone();
    flat.input_std[2] = 0.0;
    assert!(flat.validate().is_err());
    let mut limbs = scaling.clone();
    limbs.output_limbs = 3;
    assert!(limbs.validate().is_err(), "18 result ciphertexts exceed the message cap");
    // A network whose scaling lists another number of inputs than its weights is refused.
    let mut mismatch = net.clone();
    mismatch.scaling.input_min.push(0.0);
    mismatch.scaling.input_max.push(1.0);
    mismatch.scaling.input_mean.push(0.5);
    mismatch.scaling.input_std.push(1.0);
    assert!(mismatch.validate().is_err());
}
