//! ONNX tensors (initializers, `Constant` nodes, attribute tensors) as arrays, checked against their
//! declared shape before anything is allocated from it.

use ndarray::{ArrayD, IxDyn};

use crate::error::{ImportError, Result};
use crate::proto::{TensorProto, tensor_proto::DataLocation, tensor_proto::DataType};

/// A constant tensor: real values, or integers (shapes, axes).
#[derive(Debug, Clone)]
pub enum Constant {
    /// Float, double (narrowed to `f32`), or small integers read as reals.
    Real(ArrayD<f32>),
    /// `int64` / `int32` values, with their shape.
    Int(Vec<i64>, Vec<usize>),
}

impl Constant {
    /// The values as reals (integers converted).
    pub fn real(&self) -> ArrayD<f32> {
        match self {
            Constant::Real(a) => a.clone(),
            Constant::Int(v, shape) => {
                ArrayD::from_shape_vec(IxDyn(shape), v.iter().map(|&x| x as f32).collect()).expect("shape checked")
            }
        }
    }

    /// The values as integers, if they are integers.
    pub fn ints(&self) -> Option<&[i64]> {
        match self {
            Constant::Int(v, _) => Some(v),
            Constant::Real(_) => None,
        }
    }
}

/// Decodes one tensor; `what` names it in errors.
pub fn decode(t: &TensorProto, what: &str) -> Result<Constant> {
    if t.data_location == Some(DataLocation::External as i32) {
        return Err(ImportError::Graph(format!(
            "tensor {what} keeps its data in an external file: export with the weights inside the model \
             (PyTorch: a model under 2 GB; onnx.save_model(..., save_as_external_data=False))"
        )));
    }
    let mut shape = Vec::with_capacity(t.dims.len());
    // The element count, and the product of the non-zero axes: ndarray refuses a shape whose non-zero
    // axes multiply past `isize::MAX` even when another axis is 0 (and the count is 0).
    let (mut count, mut extent) = (1usize, 1usize);
    let too_large = || ImportError::TooLarge(format!("tensor {what} dims {:?}", t.dims));
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| ImportError::Graph(format!("tensor {what} has dimension {d}")))?;
        count = count.checked_mul(d).ok_or_else(too_large)?;
        extent = extent.checked_mul(d.max(1)).filter(|&e| e <= isize::MAX as usize).ok_or_else(too_large)?;
        shape.push(d);
    }
    let raw = t.raw_data.as_deref();
    let data_type = t.data_type.unwrap_or(0);
    let mismatch = |found: usize| {
        ImportError::Graph(format!("tensor {what}: shape {shape:?} needs {count} values, the file holds {found}"))
    };
    // Values come either as little-endian raw data or in the typed repeated field; either way their
    // number must be the declared count (checked on the raw length before converting, so a short buffer
    // never turns into a large allocation).
    let raw_fits = |width: usize| match raw {
        Some(r) if r.len() % width != 0 || r.len() / width != count => Err(mismatch(r.len() / width)),
        _ => Ok(()),
    };
    let checked = |n: usize| if n == count { Ok(()) } else { Err(mismatch(n)) };
    let real = |v: Vec<f32>| -> Result<Constant> {
        checked(v.len())?;
        ArrayD::from_shape_vec(IxDyn(&shape), v)
            .map(Constant::Real)
            .map_err(|e| ImportError::Graph(format!("tensor {what}: {e}")))
    };
    let int = |v: Vec<i64>| -> Result<Constant> {
        checked(v.len())?;
        Ok(Constant::Int(v, shape.clone()))
    };
    match DataType::try_from(data_type) {
        Ok(DataType::Float) => {
            raw_fits(4)?;
            real(raw.map_or_else(|| t.float_data.clone(), |r| little_endian(r, f32::from_le_bytes)))
        }
        Ok(DataType::Double) => {
            raw_fits(8)?;
            let v = raw.map_or_else(|| t.double_data.clone(), |r| little_endian(r, f64::from_le_bytes));
            real(v.into_iter().map(|x| x as f32).collect())
        }
        Ok(DataType::Int64) => {
            raw_fits(8)?;
            int(raw.map_or_else(|| t.int64_data.clone(), |r| little_endian(r, i64::from_le_bytes)))
        }
        Ok(DataType::Int32) => {
            raw_fits(4)?;
            let v = raw.map_or_else(|| t.int32_data.clone(), |r| little_endian(r, i32::from_le_bytes));
            int(v.into_iter().map(i64::from).collect())
        }
        _ => Err(ImportError::Graph(format!(
            "tensor {what} has element type {} (ONNX TensorProto.DataType): only float, double, int32 and \
             int64 tensors are read",
            DataType::try_from(data_type).map(|d| d.as_str_name().to_string()).unwrap_or(data_type.to_string())
        ))),
    }
}

/// Little-endian values of `W` bytes each (the caller checked that the length is a multiple of `W`).
fn little_endian<const W: usize, T>(raw: &[u8], from: fn([u8; W]) -> T) -> Vec<T> {
    raw.chunks_exact(W).map(|b| from(b.try_into().expect("W bytes"))).collect()
}
