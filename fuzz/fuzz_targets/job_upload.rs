//! The training-job upload (more-enctrain `upload`): the body of `POST /api/v1/jobs`, a JSON header line
//! and three length-prefixed wire-format tensors. Arbitrary bytes never panic in `decode_header` or in
//! `decode_body` for the input shape and outputs of each network the server offers
//! (`more_nn::networks::trainable()`, the list the server's `jobs::networks` wraps). A body that is accepted
//! decodes consistently: its request is the header's, it has as many rows as its input tensor, the data
//! and targets have the network's shapes in coefficient form with finite values, the canaries convert
//! under the data's basis, and the three tensors re-encode to the bytes that were sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use more_core::EncryptedTensor;
use more_enctrain::CoeffTensor;
use more_enctrain::upload::{decode_body, decode_header, encode_body};

const LIMIT: usize = 1 << 24;

/// The three tensors of a body that decoded, read again by their length prefixes.
fn tensors(body: &[u8], mut pos: usize) -> Vec<EncryptedTensor<f32>> {
    (0..3)
        .map(|_| {
            let len = u64::from_le_bytes(body[pos..pos + 8].try_into().unwrap()) as usize;
            let t = more_core::decode::<f32>(&body[pos + 8..pos + 8 + len], LIMIT).expect("an accepted tensor");
            pos += 8 + len;
            t
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let header = decode_header(data);
    if let Ok((_, offset)) = &header {
        assert!(*offset <= data.len() && *offset <= more_enctrain::upload::MAX_HEADER);
    }
    for net in more_nn::networks::trainable() {
        let Ok(upload) = decode_body(data, &net.input_shape, net.outputs) else { continue };
        let (request, offset) = header.as_ref().expect("an accepted body has a header").clone();
        assert_eq!(upload.request, request);
        let t = tensors(data, offset);
        let rows = t[0].shape()[0];
        assert!(rows > 0);
        assert_eq!(upload.data.len(), rows);
        let mut x_shape = vec![rows];
        x_shape.extend_from_slice(&net.input_shape);
        assert_eq!(upload.data.inputs.shape(), &x_shape[..]);
        assert_eq!(upload.data.targets.shape(), &[rows, net.outputs]);
        assert!(upload.data.inputs.is_finite() && upload.data.targets.is_finite());
        CoeffTensor::from_encrypted(&upload.canaries, upload.data.basis()).expect("the canaries convert");
        // The tensors are sent in their one encoding: re-encoding gives the bytes after the header.
        let again = encode_body(&request, &t[0], &t[1], &upload.canaries).expect("encodes");
        let (_, again_offset) = decode_header(&again).expect("an encoded header parses");
        assert_eq!(&again[again_offset..], &data[offset..], "the tensors re-encode differently");
        // A mini-batch of the first and last rows has the network's shapes.
        let (bx, by) = upload.data.batch(&[0, rows - 1]);
        assert_eq!(bx.shape()[0], 2);
        assert_eq!(by.shape(), &[2, net.outputs]);
    }
});
