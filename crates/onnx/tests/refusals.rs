//! Graphs built here message by message: what imports (the no-op operators, folding, a reshape of the
//! input) and what is refused with an error naming the operator, node and opset — never a panic.

use more_onnx::proto::TensorProto;
use more_onnx::sample::{int_attr, ints_tensor, model, node, tensor};
use more_onnx::{ImportError, ImportOptions, import};
use ndarray::{ArrayD, IxDyn};

fn options() -> ImportOptions {
    ImportOptions::new("t", "test")
}

/// A 3-input, 2-output dense layer `W = [[1, 2], [3, 4], [5, 6]]`, bias `[0.5, -0.5]`.
fn gemm_init() -> Vec<TensorProto> {
    vec![tensor("W", &[3, 2], &[1., 2., 3., 4., 5., 6.]), tensor("B", &[2], &[0.5, -0.5])]
}

fn run(bytes: &[u8], x: &[f32]) -> Vec<f32> {
    let m = import(bytes, &options()).unwrap().model;
    let mut shape = vec![1];
    shape.extend_from_slice(m.input_shape());
    let x = ArrayD::from_shape_vec(IxDyn(&shape), x.to_vec()).unwrap();
    m.forward_plain(x.view()).unwrap().iter().copied().collect()
}

#[test]
fn no_op_operators_and_folded_constants_import() {
    // Identity, Dropout (inference), Gemm with alpha/beta, Mul by 2 and Add 1 folded into it, then Relu.
    let nodes = vec![
        node("Identity", &["x"], "a", vec![]),
        node("Dropout", &["a"], "b", vec![]),
        node("Gemm", &["b", "W", "B"], "c", vec![]),
        node("Mul", &["c", "two"], "d", vec![]),
        node("Add", &["d", "one"], "e", vec![]),
        node("Relu", &["e"], "y", vec![]),
    ];
    let mut init = gemm_init();
    init.push(tensor("two", &[], &[2.0]));
    init.push(tensor("one", &[1], &[1.0]));
    let bytes = model(&[None, Some(3)], nodes, init, "y");
    let imported = import(&bytes, &options()).unwrap();
    assert_eq!(imported.model.layers().len(), 2, "dense + relu");
    assert_eq!(imported.report.dropped.len(), 2);
    assert_eq!(imported.report.folded.len(), 2);
    // x = [1, 0, -1]: x·W + B = [1 - 5 + 0.5, 2 - 6 - 0.5] = [-3.5, -4.5]; ·2 + 1 = [-6, -8]; relu = [0, 0].
    assert_eq!(run(&bytes, &[1., 0., -1.]), vec![0.0, 0.0]);
    // x = [1, 1, 1]: [9.5, 11.5] → [20, 24].
    assert_eq!(run(&bytes, &[1., 1., 1.]), vec![20.0, 24.0]);
}

#[test]
fn a_scale_after_a_nonlinearity_folds_into_the_next_layer() {
    // x → Tanh → Mul 0.5 → MatMul W → Add B: the scale multiplies W.
    let nodes = vec![
        node("Tanh", &["x"], "a", vec![]),
        node("Mul", &["half", "a"], "b", vec![]),
        node("MatMul", &["b", "W"], "c", vec![]),
        node("Add", &["c", "B"], "y", vec![]),
    ];
    let mut init = gemm_init();
    init.push(tensor("half", &[], &[0.5]));
    let bytes = model(&[None, Some(3)], nodes, init, "y");
    let x = [0.3f32, -0.2, 0.1];
    let t: Vec<f32> = x.iter().map(|v| 0.5 * v.tanh()).collect();
    let want = [t[0] + 3.0 * t[1] + 5.0 * t[2] + 0.5, 2.0 * t[0] + 4.0 * t[1] + 6.0 * t[2] - 0.5];
    let got = run(&bytes, &x);
    assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} vs {want:?}");
}

#[test]
fn a_reshape_of_the_input_sets_the_input_shape() {
    // [N, 12] viewed as [N, 3, 2, 2], flattened back, dense 12 → 2.
    let nodes = vec![
        node("Reshape", &["x", "shape"], "a", vec![]),
        node("Flatten", &["a"], "b", vec![int_attr("axis", 1)]),
        node("Gemm", &["b", "W12", "B"], "y", vec![int_attr("transB", 1)]),
    ];
    let w: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let init = vec![ints_tensor("shape", &[-1, 3, 2, 2]), tensor("W12", &[2, 12], &w), tensor("B", &[2], &[0.0, 0.0])];
    let bytes = model(&[None, Some(12)], nodes, init, "y");
    let m = import(&bytes, &options()).unwrap().model;
    assert_eq!(m.input_shape(), &[3, 2, 2]);
}

fn refusal(bytes: &[u8]) -> String {
    let e = import(bytes, &options()).unwrap_err();
    e.to_string()
}

#[test]
fn unsupported_operators_are_named_with_node_and_opset() {
    let nodes = vec![node("Gemm", &["x", "W", "B"], "a", vec![]), node("LeakyRelu", &["a"], "y", vec![])];
    let e = import(&model(&[None, Some(3)], nodes, gemm_init(), "y"), &options()).unwrap_err();
    match &e {
        ImportError::Unsupported { op, node, opset, .. } => {
            assert_eq!((op.as_str(), node.as_str(), *opset), ("LeakyRelu", "LeakyRelu_y", 17));
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("unsupported operator LeakyRelu (node \"LeakyRelu_y\", opset 17)"), "{e}");
}

#[test]
fn what_cannot_be_translated_is_refused_with_the_reason() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Two computed values meet (a residual connection).
        (
            model(
                &[None, Some(2)],
                vec![node("Relu", &["x"], "a", vec![]), node("Add", &["a", "x"], "y", vec![])],
                vec![],
                "y",
            ),
            "only sequential networks",
        ),
        // A batch normalisation after an activation has no linear layer to go into.
        (
            model(
                &[None, Some(2)],
                vec![
                    node("Relu", &["x"], "a", vec![]),
                    node("BatchNormalization", &["a", "s", "b", "m", "v"], "y", vec![]),
                ],
                ["s", "b", "m", "v"].iter().map(|n| tensor(n, &[2], &[1.0, 1.0])).collect(),
                "y",
            ),
            "cannot be folded",
        ),
        // A grouped convolution.
        (
            model(
                &[None, Some(2), Some(4), Some(4)],
                vec![node("Conv", &["x", "K"], "y", vec![int_attr("group", 2)])],
                vec![tensor("K", &[2, 1, 3, 3], &[0.0; 18])],
                "y",
            ),
            "groups other than 1",
        ),
        // A weight of the wrong size for the input.
        (
            model(&[None, Some(4)], vec![node("Gemm", &["x", "W", "B"], "y", vec![])], gemm_init(), "y"),
            "weight on a value",
        ),
        // A tensor whose data does not match its shape.
        (
            model(
                &[None, Some(3)],
                vec![node("Gemm", &["x", "W", "B"], "y", vec![])],
                vec![tensor("W", &[3, 2000000000], &[1.0]), tensor("B", &[2], &[0.0, 0.0])],
                "y",
            ),
            "needs 6000000000 values",
        ),
        // Found by fuzzing: a zero axis beside axes whose product passes isize::MAX (count 0, so the data
        // length matched, and ndarray then refused the shape).
        (
            model(
                &[None, Some(3)],
                vec![node("Gemm", &["x", "W", "B"], "y", vec![])],
                vec![tensor("W", &[0, 1 << 62, 4], &[]), tensor("B", &[2], &[0.0, 0.0])],
                "y",
            ),
            "too large",
        ),
        // An input without a fixed per-sample size.
        (model(&[None, None], vec![node("Relu", &["x"], "y", vec![])], vec![], "y"), "fixed size"),
        // A multiplication at the very end with nothing to absorb it.
        (
            model(
                &[None, Some(2)],
                vec![node("Relu", &["x"], "a", vec![]), node("Mul", &["a", "c"], "y", vec![])],
                vec![tensor("c", &[], &[3.0])],
                "y",
            ),
            "no layer follows",
        ),
        // NaN weights.
        (
            model(
                &[None, Some(3)],
                vec![node("Gemm", &["x", "W", "B"], "y", vec![])],
                vec![tensor("W", &[3, 2], &[f32::NAN; 6]), tensor("B", &[2], &[0.0, 0.0])],
                "y",
            ),
            "NaN",
        ),
    ];
    for (bytes, want) in cases {
        let e = refusal(&bytes);
        assert!(e.contains(want), "expected {want:?} in {e:?}");
    }
}

#[test]
fn the_samples_import_and_run() {
    let mlp = import(&more_onnx::sample::mlp(), &options()).unwrap().model;
    assert_eq!(mlp.layers().len(), 4);
    let cnn = import(&more_onnx::sample::cnn(), &options()).unwrap();
    assert_eq!(cnn.model.input_shape(), &[1, 6, 6]);
    assert_eq!(cnn.report.folded.len(), 1, "the batch normalisation");
    let x = ArrayD::from_shape_fn(IxDyn(&[2, 1, 6, 6]), |i| (i[2] * 6 + i[3]) as f32 / 36.0);
    assert_eq!(cnn.model.forward_plain(x.view()).unwrap().shape(), &[2, 2]);
}

#[test]
fn hostile_bytes_are_an_error_not_a_panic() {
    assert!(matches!(import(b"", &options()), Err(ImportError::Graph(_))), "an empty message has no graph");
    assert!(matches!(import(&[0xff; 64], &options()), Err(ImportError::Decode(_))));
    let good = model(&[None, Some(3)], vec![node("Gemm", &["x", "W", "B"], "y", vec![])], gemm_init(), "y");
    // Every truncation and single-byte corruption decodes to an error or a model, never a panic.
    for cut in 0..good.len() {
        let _ = import(&good[..cut], &options());
    }
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x5a;
        let _ = import(&bad, &options());
    }
}
