//! `more classify --model F IMAGE...`: classify PNG or JPEG files the way the browser does — decode,
//! preprocess as the model's metadata says (`more-imaging`, the same code the page runs in wasm), encrypt
//! under a fresh key, run the model on the ciphertext, decrypt — and check the answer against plaintext
//! inference of the same input.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::{ArrayD, IxDyn};
use serde::Serialize;

use more_core::{KeyOptions, SecretKey};
use more_imaging::{GrayImage, MAX_SIDE, Normalization, PixelFormat, preprocess};
use more_nn::{Model, OutputKind};

/// Arguments of `more classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Model file (an image model: preprocessing `mnist-digit` or `angio-frame`).
    #[arg(long)]
    pub model: PathBuf,
    /// PNG or JPEG files (any size up to 8192 pixels per side; digits light-on-dark or dark-on-light).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Print one JSON array instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// The answer for one image.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// The file.
    pub file: String,
    /// Its width and height.
    pub size: [usize; 2],
    /// Predicted label (from the decrypted output).
    pub label: String,
    /// Probability of every label (softmax of the decrypted logits).
    pub probabilities: Vec<f32>,
    /// The plaintext model's label for the same input.
    pub plaintext_label: String,
    /// Largest |decrypted output − plaintext output|.
    pub max_abs_diff: f32,
    /// Milliseconds: decode + preprocess, encrypt, encrypted forward pass, decrypt.
    pub ms: [f64; 4],
}

/// Largest accepted file, bytes.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Runs `more classify`.
pub fn run(args: ClassifyArgs) -> Result<()> {
    let model = Model::load(&args.model)?;
    let meta = model.meta();
    let pre = &meta.preprocessing;
    if !matches!(pre.kind.as_str(), "mnist-digit" | "angio-frame") {
        bail!(
            "model {} does not take images (its preprocessing is {:?}; image models use \"mnist-digit\" or \"angio-frame\")",
            meta.id,
            pre.kind
        );
    }
    let norm = Normalization::new(pre.scale, pre.mean.clone(), pre.std.clone()).context("the model's normalisation")?;
    let mut answers = Vec::new();
    let mut failed = 0;
    for path in &args.images {
        match classify(&model, &norm, path) {
            Ok(a) => {
                if !args.json {
                    let p = a.probabilities.iter().copied().fold(0.0, f32::max);
                    println!(
                        "{}: {} (p = {p:.3}; {}x{}; plaintext {}, max |diff| {:.1e}; {:.1} ms encrypted forward)",
                        a.file, a.label, a.size[0], a.size[1], a.plaintext_label, a.max_abs_diff, a.ms[2]
                    );
                }
                answers.push(a);
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e:#}", path.display());
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answers)?);
    }
    if failed > 0 {
        bail!("{failed} of {} images could not be classified", args.images.len());
    }
    Ok(())
}

fn classify(model: &Model, norm: &Normalization, path: &Path) -> Result<Answer> {
    let meta = model.meta();
    let t0 = Instant::now();
    let image = decode(path)?;
    let size = [image.width(), image.height()];
    let x = preprocess(&meta.preprocessing.kind, &image, meta.preprocessing.resize, norm)?;
    let mut shape = vec![1];
    shape.extend_from_slice(model.input_shape());
    let x = ArrayD::from_shape_vec(IxDyn(&shape), x)
        .with_context(|| format!("the preprocessed image does not fit the model's input {:?}", model.input_shape()))?;
    let t1 = Instant::now();
    let key = SecretKey::generate(KeyOptions::default())?;
    let enc = key.encrypt_tensor(&x.view())?;
    let t2 = Instant::now();
    let out = model.forward_encrypted(&enc)?;
    let t3 = Instant::now();
    let dec = key.decrypt_tensor(&out);
    let t4 = Instant::now();
    let plain = model.forward_plain(x.view())?;
    let dec: Vec<f32> = dec.iter().copied().collect();
    let plain: Vec<f32> = plain.iter().copied().collect();
    let max_abs_diff = dec.iter().zip(&plain).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let probabilities = match meta.output_kind {
        OutputKind::Probabilities => dec.clone(),
        _ => softmax(&dec),
    };
    let name = |v: &[f32]| {
        let i = argmax(v);
        meta.labels.get(i).cloned().unwrap_or_else(|| i.to_string())
    };
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    Ok(Answer {
        file: path.display().to_string(),
        size,
        label: name(&dec),
        probabilities,
        plaintext_label: name(&plain),
        max_abs_diff,
        ms: [ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4)],
    })
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
}

fn softmax(v: &[f32]) -> Vec<f32> {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = v.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|x| x / sum).collect()
}

/// Decodes a PNG or JPEG file (recognised by its first bytes, not its name) to a grayscale image, refusing
/// files over 64 MiB and images over 8192 pixels per side before decoding their pixels.
pub fn decode(path: &Path) -> Result<GrayImage> {
    let file = std::fs::File::open(path).context("cannot open")?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_FILE_BYTES {
        bail!("the file is too large ({len} bytes; at most {MAX_FILE_BYTES})");
    }
    let mut bytes = Vec::with_capacity(len as usize);
    BufReader::new(file).take(MAX_FILE_BYTES).read_to_end(&mut bytes).context("cannot read")?;
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(&bytes)
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        decode_jpeg(&bytes)
    } else {
        bail!("not a PNG or JPEG file")
    }
}

fn check_side(width: usize, height: usize) -> Result<()> {
    if width > MAX_SIDE || height > MAX_SIDE {
        bail!("the image is too large ({width}x{height}; at most {MAX_SIDE} pixels per side)");
    }
    Ok(())
}

fn decode_png(bytes: &[u8]) -> Result<GrayImage> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let unreadable = |e: png::DecodingError| anyhow::anyhow!("not a readable PNG: {e}");
    let mut reader = decoder.read_info().map_err(unreadable)?;
    let (width, height) = (reader.info().width as usize, reader.info().height as usize);
    check_side(width, height)?;
    let mut buf = vec![0; reader.output_buffer_size().context("the image is too large")?];
    let frame = reader.next_frame(&mut buf).map_err(unreadable)?;
    let format = match frame.color_type {
        png::ColorType::Grayscale => PixelFormat::Gray,
        png::ColorType::GrayscaleAlpha => PixelFormat::GrayAlpha,
        png::ColorType::Rgb => PixelFormat::Rgb,
        png::ColorType::Rgba => PixelFormat::Rgba,
        other => bail!("unsupported PNG colour type {other:?}"),
    };
    buf.truncate(frame.buffer_size());
    Ok(GrayImage::from_bytes(frame.width as usize, frame.height as usize, &buf, format)?)
}

fn decode_jpeg(bytes: &[u8]) -> Result<GrayImage> {
    let unreadable = |e: jpeg_decoder::Error| anyhow::anyhow!("not a readable JPEG: {e}");
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(unreadable)?;
    let info = decoder.info().context("no image header")?;
    let (width, height) = (usize::from(info.width), usize::from(info.height));
    check_side(width, height)?;
    let pixels = decoder.decode().map_err(unreadable)?;
    let (pixels, format) = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => (pixels, PixelFormat::Gray),
        jpeg_decoder::PixelFormat::L16 => (pixels.chunks_exact(2).map(|p| p[0]).collect(), PixelFormat::Gray),
        jpeg_decoder::PixelFormat::RGB24 => (pixels, PixelFormat::Rgb),
        jpeg_decoder::PixelFormat::CMYK32 => bail!("CMYK JPEGs are not supported (save it as RGB or grayscale)"),
    };
    Ok(GrayImage::from_bytes(width, height, &pixels, format)?)
}
