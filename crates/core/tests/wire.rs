//! The wire format: round trips, and that no input makes the decoder panic.

use more_core::codec::{self, MEDIA_TYPE};
use more_core::{AnyTensor, EncryptedTensor, Error, KeyOptions, SecretKey};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

const LIMIT: usize = 1 << 20;

fn sample_f32(shape: &[usize]) -> EncryptedTensor<f32> {
    let key = SecretKey::from_seed(5, KeyOptions::default()).unwrap();
    let n: usize = shape.iter().product();
    let x = ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|i| i as f32 / n as f32).collect()).unwrap();
    key.encrypt_tensor(&x.view()).unwrap()
}

#[test]
fn round_trip_both_dtypes() {
    let t = sample_f32(&[2, 3, 4]);
    let bytes = codec::encode(&t);
    assert_eq!(bytes.len(), 8 + 3 * 4 + 4 * 24 * 4);
    assert_eq!(&bytes[..8], &[b'M', b'O', b'R', b'E', 1, 1, 3, 0]);
    assert_eq!(codec::decode::<f32>(&bytes, LIMIT).unwrap(), t);
    let t64: EncryptedTensor<f64> = t.cast();
    let b64 = codec::encode(&t64);
    assert!(matches!(codec::decode_any(&b64, LIMIT).unwrap(), AnyTensor::F64(x) if x == t64));
    assert!(matches!(codec::decode::<f32>(&b64, LIMIT), Err(Error::WrongDType { .. })));
    assert_eq!(MEDIA_TYPE, "application/x-more-tensor");
}

#[test]
fn known_bytes() {
    // One f32 element [[1, 2], [3, 4]]: a fixed vector other-language clients can test against.
    let t =
        EncryptedTensor::<f32>::from_data(ArrayD::from_shape_vec(IxDyn(&[4, 1]), vec![1.0, 2.0, 3.0, 4.0]).unwrap())
            .unwrap();
    let hex: String = codec::encode(&t).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "4d4f52450101010001000000".to_owned() + "0000803f" + "00000040" + "00004040" + "00008040");
}

#[test]
fn limits_lengths_and_values_are_checked() {
    let t = sample_f32(&[4, 4]);
    let bytes = codec::encode(&t);
    assert!(matches!(codec::decode::<f32>(&bytes, 100), Err(Error::TooLarge { .. })));
    assert!(matches!(codec::decode::<f32>(&bytes[..bytes.len() - 1], LIMIT), Err(Error::Malformed(_))));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(codec::decode::<f32>(&longer, LIMIT), Err(Error::Malformed(_))));
    let mut nan = bytes.clone();
    let at = nan.len() - 4;
    nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(matches!(codec::decode::<f32>(&nan, LIMIT), Err(Error::NonFiniteInput { plane: 3, index: 15 })));
    let mut inf = bytes.clone();
    inf[8 + 8..8 + 12].copy_from_slice(&f32::INFINITY.to_le_bytes());
    assert!(matches!(codec::decode::<f32>(&inf, LIMIT), Err(Error::NonFiniteInput { plane: 0, index: 0 })));
    // A huge declared shape is refused from the header alone, before any allocation.
    let mut huge = vec![b'M', b'O', b'R', b'E', 1, 1, 4, 0];
    for _ in 0..4 {
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    assert!(matches!(codec::decode::<f32>(&huge, LIMIT), Err(Error::TooLarge { .. })));
    let mut v2 = bytes.clone();
    v2[4] = 2;
    assert!(matches!(codec::decode::<f32>(&v2, LIMIT), Err(Error::UnsupportedVersion(2))));
    let mut zero = bytes;
    zero[8..12].fill(0);
    assert!(matches!(codec::decode::<f32>(&zero, LIMIT), Err(Error::Malformed(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = codec::decode_any(&bytes, 1 << 12);
    }

    #[test]
    fn random_headers_never_panic(dtype in 0u8..4, ndim in 0u8..10, dims in prop::collection::vec(any::<u32>(), 0..10), tail in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = vec![b'M', b'O', b'R', b'E', 1, dtype, ndim, 0];
        for d in dims {
            bytes.extend_from_slice(&d.to_le_bytes());
        }
        bytes.extend_from_slice(&tail);
        let _ = codec::decode_any(&bytes, 1 << 16);
    }

    #[test]
    fn truncated_and_mutated_never_panic(cut in 0usize..400, flip in 0usize..400, bit in 0u8..8) {
        let bytes = codec::encode(&sample_f32(&[3, 7]));
        let cut = cut.min(bytes.len());
        prop_assert!(codec::decode::<f32>(&bytes[..cut], LIMIT).is_err() || cut == bytes.len());
        let mut m = bytes.clone();
        let i = flip % m.len();
        m[i] ^= 1 << bit;
        let _ = codec::decode_any(&m, LIMIT);
    }
}
