//! The slot-per-image packing end to end on the real parameters: one batch of images through keys,
//! encryption, the wire format, the server's evaluation and decryption equals the exact integer network on
//! every image; hostile and mismatched messages are refused.

use more_bfv::batch::{BATCH_INPUT_CIPHERTEXTS, BATCH_SLOTS};
use more_bfv::network::{CHANNELS, HIDDEN, MAX_CLASSES, WINDOW};
use more_bfv::params::PLAINTEXT_MODULUS;
use more_bfv::wire::{
    decode_batch, decode_batch_keys, decode_batch_result, encode_batch, encode_batch_keys, encode_batch_result,
    encode_keys,
};
use more_bfv::{BatchEvaluator, Client, QuantizedNet};
use rand::{Rng, SeedableRng};

fn random_net(seed: u64) -> QuantizedNet {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut draw = |n: usize, m: i64| (0..n).map(|_| rng.random_range(-m..=m)).collect::<Vec<i64>>();
    QuantizedNet {
        input_levels: 15,
        conv_weight: draw(CHANNELS * WINDOW, 7),
        conv_bias: draw(CHANNELS, 300),
        dense_weight: draw(MAX_CLASSES * HIDDEN, 3),
        dense_bias: draw(MAX_CLASSES, 1 << 20),
    }
}

#[test]
fn a_batch_equals_the_integer_network_on_every_image() {
    let net = random_net(3);
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    // Random images, and the two extremes (all zero, all at the top level).
    let mut images: Vec<Vec<i64>> = (0..37).map(|_| (0..784).map(|_| rng.random_range(0..=15)).collect()).collect();
    images.push(vec![0; 784]);
    images.push(vec![15; 784]);
    let expect: Vec<Vec<i64>> = images.iter().map(|x| net.forward(x).0).collect();
    let largest = images.iter().map(|x| net.forward(x).1.max()).max().unwrap();
    assert!(largest < (PLAINTEXT_MODULUS / 2) as i64, "the test network must not wrap: {largest}");

    let client = Client::from_seed([9; 32]);
    let keys = decode_batch_keys(&encode_batch_keys(&client.batch_keys(&mut rand::rng()).unwrap())).unwrap();
    let upload = encode_batch(&client.encrypt_batch(&images, &mut rand::rng()).unwrap(), images.len());
    let (count, inputs) = decode_batch(&upload).unwrap();
    assert_eq!((count, inputs.len()), (images.len(), BATCH_INPUT_CIPHERTEXTS));
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let progress = |done: usize, total: usize| {
        assert!(done >= 1 && done <= total && total == HIDDEN);
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let out = BatchEvaluator::new(&net).unwrap().evaluate(&keys, &inputs, &progress).unwrap();
    assert_eq!(calls.into_inner(), HIDDEN);
    let result = encode_batch_result(&out, count);
    // The result holds one ciphertext per class: read with another class count, it is refused.
    assert!(decode_batch_result(&result, 2).is_err());
    let (count, out) = decode_batch_result(&result, MAX_CLASSES).unwrap();
    let got = client.decrypt_batch(&out, MAX_CLASSES, count).unwrap();
    assert_eq!(got, expect);

    // The same seed gives the same secret key; another key reads something else.
    assert_eq!(Client::from_seed([9; 32]).decrypt_batch(&out, MAX_CLASSES, count).unwrap(), expect);
    assert_ne!(Client::from_seed([8; 32]).decrypt_batch(&out, MAX_CLASSES, count).unwrap(), expect);
}

#[test]
fn batch_messages_refuse_hostile_and_mismatched_bytes() {
    let client = Client::from_seed([1; 32]);
    let mut rng = rand::rng();
    // Keys: truncations, a flipped magic, and single-image keys (another level, another magic).
    let keys = encode_batch_keys(&client.batch_keys(&mut rng).unwrap());
    for cut in [0, 7, 16, 20, keys.len() / 2, keys.len() - 1] {
        assert!(decode_batch_keys(&keys[..cut]).is_err(), "keys cut at {cut}");
    }
    let mut flipped = keys.clone();
    flipped[3] ^= 1;
    assert!(decode_batch_keys(&flipped).is_err());
    let mut single = encode_keys(&client.eval_keys(&mut rng).unwrap());
    assert!(decode_batch_keys(&single).is_err());
    single[..8].copy_from_slice(b"MBFVKEYB");
    assert!(decode_batch_keys(&single).is_err());

    // Batches: empty or oversized batches are refused before any ciphertext work, truncations anywhere.
    assert!(client.encrypt_batch(&[], &mut rng).is_err());
    assert!(client.encrypt_batch(&[vec![0; 783]], &mut rng).is_err());
    let too_many = vec![vec![0i64; 784]; BATCH_SLOTS + 1];
    assert!(client.encrypt_batch(&too_many, &mut rng).is_err());
    let cts = client.encrypt_batch(&[vec![1; 784], vec![2; 784]], &mut rng).unwrap();
    let bytes = encode_batch(&cts, 2);
    for cut in [0, 8, 19, 21, 1000, bytes.len() / 2, bytes.len() - 1] {
        assert!(decode_batch(&bytes[..cut]).is_err(), "batch cut at {cut}");
    }
    for images in [0usize, BATCH_SLOTS + 1] {
        let mut b = bytes.clone();
        b[17..19].copy_from_slice(&(images as u16).to_le_bytes());
        assert!(decode_batch(&b).is_err(), "{images} images");
    }
    // A result message is not an input batch, nor the other way round.
    assert!(decode_batch_result(&bytes, MAX_CLASSES).is_err());
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(decode_batch(&extra).is_err());
    let (n, back) = decode_batch(&bytes).unwrap();
    assert_eq!((n, back.len()), (2, BATCH_INPUT_CIPHERTEXTS));
    // Decryption checks its counts: images, ciphertexts for the classes, and the class count itself.
    assert!(client.decrypt_batch(&back[..10], 10, 0).is_err());
    assert!(client.decrypt_batch(&back[..9], 10, 2).is_err());
    assert!(client.decrypt_batch(&back[..1], 1, 2).is_err());
    assert!(client.decrypt_batch(&back[..11], 11, 2).is_err());
    assert_eq!(client.decrypt_batch(&back[..2], 2, 2).unwrap().len(), 2);
}
