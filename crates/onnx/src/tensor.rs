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
    let real = |values: Vec<f32>| -> Result<Constant> {
        if values.len() != count {
            return Err(mismatch(values.len()));
        }
        ArrayD::from_shape_vec(IxDyn(&shape), values)
            .map(Constant::Real)
            .map_err(|e| ImportError::Graph(format!("tensor {what}: {e}")))
    };
    let int = |values: Vec<i64>| -> Result<Constant> {
        if values.len() != count {
            return Err(mismatch(values.len()));
        }
        Ok(Constant::Int(values, shape.clone()))
    };
    // Raw data is little-endian; its length must be a whole number of elements of the declared count
    // (checked before converting, so a short buffer never turns into a large allocation).
    let from_raw = |raw: &[u8], width: usize| -> Result<()> {
        if raw.len() % width != 0 || raw.len() / width != count {
            return Err(mismatch(raw.len() / width));
        }
        Ok(())
    };
    match DataType::try_from(data_type) {
        Ok(DataType::Float) => match raw {
            Some(raw) => {
                from_raw(raw, 4)?;
                real(raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect())
            }
            None => real(t.float_data.clone()),
        },
        Ok(DataType::Double) => match raw {
            Some(raw) => {
                from_raw(raw, 8)?;
                real(raw.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect())
            }
            None => real(t.double_data.iter().map(|&x| x as f32).collect()),
        },
        Ok(DataType::Int64) => match raw {
            Some(raw) => {
                from_raw(raw, 8)?;
                int(raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect())
            }
            None => int(t.int64_data.clone()),
        },
        Ok(DataType::Int32) => match raw {
            Some(raw) => {
                from_raw(raw, 4)?;
                int(raw.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")) as i64).collect())
            }
            None => int(t.int32_data.iter().map(|&x| x as i64).collect()),
        },
        _ => Err(ImportError::Graph(format!(
            "tensor {what} has element type {} (ONNX TensorProto.DataType): only float, double, int32 and \
             int64 tensors are read",
            DataType::try_from(data_type).map(|d| d.as_str_name().to_string()).unwrap_or(data_type.to_string())
        ))),
    }
}
