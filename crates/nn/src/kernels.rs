//! Plaintext array kernels shared by inference and training: im2col/col2im for convolutions, the window
//! loops of pooling, and the index-map moves [`gather`] / [`scatter_add`]. They act on ordinary `f32`
//! arrays. Every one of them is linear, so an encrypted tensor goes through them plane by plane: inference
//! passes its four planes as one batch four times as large, and the encrypted training algebra
//! (`more-enctrain`) calls them on each coefficient array of a ciphertext tensor.

use ndarray::{Array2, Array4, ArrayD, ArrayView2, ArrayView4, IxDyn};

use crate::error::{Error, Result};

/// Index meaning "no source element: zero" in [`gather`] (and `Algebra::gather`), "drop" in
/// [`scatter_add`] (and `Algebra::scatter_add`).
pub const PAD: usize = usize::MAX;

/// Geometry of a 2-D sliding window (convolution or pooling) over `[C, H, W]` inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both directions).
    pub stride: usize,
    /// Zero padding (both directions, both sides).
    pub padding: usize,
}

impl Window {
    /// Output height and width for an input of `h x w`, or `None` if the window does not fit (or the
    /// padded size does not fit in a `usize`: a model file can declare any padding).
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let pad = self.padding.checked_mul(2)?;
        let (hp, wp) = (h.checked_add(pad)?, w.checked_add(pad)?);
        if self.stride == 0 || self.kh == 0 || self.kw == 0 || hp < self.kh || wp < self.kw {
            return None;
        }
        Some(((hp - self.kh) / self.stride + 1, (wp - self.kw) / self.stride + 1))
    }

    /// Source flat index (within one `[C, H, W]` image) of column `(c, ky, kx)` at output `(oy, ox)`,
    /// or `None` when it falls in the padding.
    #[inline]
    fn source(&self, h: usize, w: usize, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let y = (oy * self.stride + ky).checked_sub(self.padding)?;
        let x = (ox * self.stride + kx).checked_sub(self.padding)?;
        (y < h && x < w).then_some((y, x))
    }
}

/// Unfolds `x: [B, C, H, W]` into rows `[B·oh·ow, C·kh·kw]` (row = one output position of one image,
/// column order `(c, ky, kx)`), so a convolution is one GEMM with the `[O, C·kh·kw]` weight matrix.
pub fn im2col(x: ArrayView4<'_, f32>, win: Window) -> Array2<f32> {
    let (b, c, h, w) = x.dim();
    let (oh, ow) = win.output_hw(h, w).expect("window checked by the caller");
    let k = c * win.kh * win.kw;
    let mut cols = Array2::<f32>::zeros((b * oh * ow, k));
    let xs = x.as_standard_layout();
    let src = xs.as_slice().expect("standard layout");
    let dst = cols.as_slice_mut().expect("fresh array");
    for bi in 0..b {
        let img = &src[bi * c * h * w..(bi + 1) * c * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let row = &mut dst[((bi * oh + oy) * ow + ox) * k..][..k];
                let mut j = 0;
                for ci in 0..c {
                    let plane = &img[ci * h * w..(ci + 1) * h * w];
                    for ky in 0..win.kh {
                        for kx in 0..win.kw {
                            if let Some((y, xx)) = win.source(h, w, oy, ox, ky, kx) {
                                row[j] = plane[y * w + xx];
                            }
                            j += 1;
                        }
                    }
                }
            }
        }
    }
    cols
}

/// The range of output positions `o` (`0..out`) whose source `o·stride + k − padding` lies in `0..len`.
#[inline]
fn valid_range(out: usize, len: usize, k: usize, stride: usize, padding: usize) -> std::ops::Range<usize> {
    let (k, s, p, len) = (k as isize, stride as isize, padding as isize, len as isize);
    // o·s + k − p ≥ 0  ⇔  o ≥ ceil((p − k)/s);   o·s + k − p < len  ⇔  o < ceil((len + p − k)/s)
    let lo = if p - k <= 0 { 0 } else { (p - k + s - 1) / s };
    let hi = if len + p - k <= 0 { 0 } else { (len + p - k + s - 1) / s };
    let lo = lo.max(0) as usize;
    let hi = (hi.max(0) as usize).min(out);
    lo.min(hi)..hi
}

/// Unfolds `x: [B, C, H, W]` into the *transposed* column matrix `[C·kh·kw, B·oh·ow]` (row `(c, ky, kx)`,
/// column `(b, oy, ox)`): contiguous writes, no per-element bounds tests. A convolution is then
/// `W[O, C·kh·kw] · cols` — the inference path.
pub fn im2col_t(x: ArrayView4<'_, f32>, win: Window) -> Array2<f32> {
    let (b, c, h, w) = x.dim();
    let (oh, ow) = win.output_hw(h, w).expect("window checked by the caller");
    let p = oh * ow;
    let ncols = b * p;
    let mut out = Array2::<f32>::zeros((c * win.kh * win.kw, ncols));
    let xs = x.as_standard_layout();
    let src = xs.as_slice().expect("standard layout");
    let dst = out.as_slice_mut().expect("fresh array");
    let s = win.stride;
    for ci in 0..c {
        for ky in 0..win.kh {
            let oys = valid_range(oh, h, ky, s, win.padding);
            for kx in 0..win.kw {
                let oxs = valid_range(ow, w, kx, s, win.padding);
                let row = (ci * win.kh + ky) * win.kw + kx;
                let drow = &mut dst[row * ncols..(row + 1) * ncols];
                for bi in 0..b {
                    let img = &src[(bi * c + ci) * h * w..(bi * c + ci + 1) * h * w];
                    for oy in oys.clone() {
                        let y = oy * s + ky - win.padding;
                        let srow = &img[y * w..(y + 1) * w];
                        let d = &mut drow[bi * p + oy * ow..bi * p + (oy + 1) * ow];
                        if oxs.is_empty() {
                            continue;
                        }
                        let x0 = oxs.start * s + kx - win.padding;
                        if s == 1 {
                            d[oxs.clone()].copy_from_slice(&srow[x0..x0 + oxs.len()]);
                        } else {
                            for (o, v) in d[oxs.clone()].iter_mut().zip(srow[x0..].iter().step_by(s)) {
                                *o = *v;
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// The adjoint of [`im2col`]: sums rows `[B·oh·ow, C·kh·kw]` back into `[B, C, H, W]`.
pub fn col2im(cols: ArrayView2<'_, f32>, shape: [usize; 4], win: Window) -> Array4<f32> {
    let [b, c, h, w] = shape;
    let (oh, ow) = win.output_hw(h, w).expect("window checked by the caller");
    let k = c * win.kh * win.kw;
    let mut out = Array4::<f32>::zeros((b, c, h, w));
    let cs = cols.as_standard_layout();
    let src = cs.as_slice().expect("standard layout");
    let dst = out.as_slice_mut().expect("fresh array");
    for bi in 0..b {
        let img = &mut dst[bi * c * h * w..(bi + 1) * c * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let row = &src[((bi * oh + oy) * ow + ox) * k..][..k];
                let mut j = 0;
                for ci in 0..c {
                    for ky in 0..win.kh {
                        for kx in 0..win.kw {
                            if let Some((y, xx)) = win.source(h, w, oy, ox, ky, kx) {
                                img[ci * h * w + y * w + xx] += row[j];
                            }
                            j += 1;
                        }
                    }
                }
            }
        }
    }
    out
}

/// Flat source indices (within the whole `[B, C, H, W]` tensor) of every window element:
/// result `[k·k][B·C·oh·ow]`, window element-major. Pooling has no padding.
pub fn pool_indices(shape: [usize; 4], size: usize, stride: usize) -> Vec<Vec<usize>> {
    let [b, c, h, w] = shape;
    let win = Window { kh: size, kw: size, stride, padding: 0 };
    let (oh, ow) = win.output_hw(h, w).expect("window checked by the caller");
    let mut out = vec![Vec::with_capacity(b * c * oh * ow); size * size];
    for bc in 0..b * c {
        for oy in 0..oh {
            for ox in 0..ow {
                for ky in 0..size {
                    for kx in 0..size {
                        out[ky * size + kx].push(bc * h * w + (oy * stride + ky) * w + ox * stride + kx);
                    }
                }
            }
        }
    }
    out
}

/// `out.flat[i] = src.flat[index[i]]`, or `0` where `index[i]` is [`PAD`]; `out` has shape `shape`
/// (row-major flat indices). This is [`crate::Algebra::gather`] on one array: transposes, im2col as an
/// index map, pooling windows.
///
/// Fails when `index` does not hold one entry per element of `shape`, or an index is out of `src`'s range.
pub fn gather(src: &ArrayD<f32>, index: &[usize], shape: &[usize]) -> Result<ArrayD<f32>> {
    let n: usize = shape.iter().product();
    if index.len() != n {
        return Err(Error::shape("gather", format!("{n} indices"), &[index.len()]));
    }
    let s = src.as_standard_layout();
    let s = s.as_slice().expect("standard layout");
    let mut out = Vec::with_capacity(n);
    for &i in index {
        out.push(if i == PAD {
            0.0
        } else {
            *s.get(i).ok_or_else(|| Error::shape("gather", format!("index {i} in range"), src.shape()))?
        });
    }
    Ok(ArrayD::from_shape_vec(IxDyn(shape), out).expect("count checked"))
}

/// The adjoint of [`gather`]: `out.flat[index[i]] += src.flat[i]` (entries whose index is [`PAD`] are
/// dropped), `out` of shape `shape` starting from zeros. This is [`crate::Algebra::scatter_add`] on one
/// array: the backward pass of a gather.
///
/// Fails when `index` does not hold one entry per element of `src`, or an index is out of `shape`'s range.
pub fn scatter_add(src: &ArrayD<f32>, index: &[usize], shape: &[usize]) -> Result<ArrayD<f32>> {
    if index.len() != src.len() {
        return Err(Error::shape("scatter_add", format!("{} elements", index.len()), src.shape()));
    }
    let n: usize = shape.iter().product();
    let mut out = vec![0.0f32; n];
    let s = src.as_standard_layout();
    for (&i, &v) in index.iter().zip(s.iter()) {
        if i != PAD {
            *out.get_mut(i).ok_or_else(|| Error::shape("scatter_add", format!("index {i} < {n}"), shape))? += v;
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(shape), out).expect("count checked"))
}
