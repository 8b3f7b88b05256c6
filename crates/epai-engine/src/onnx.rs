//! Custom ONNX models, run with tract.
//!
//! A custom model takes one float tensor of shape `[batch, features]`, the features named by
//! the operator at registration, and may return any number of float tensors. It is compiled
//! once for a batch of one (so a caller keeps the compiled model and reuses it) and run on one
//! row of named inputs per prediction.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tract_onnx::prelude::*;

use crate::error::EngineError;

/// A compiled custom model and the names of its inputs.
pub struct OnnxModel {
    plan: std::sync::Arc<TypedRunnableModel>,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

/// One output tensor of a prediction, flattened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnnxOutput {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

impl OnnxModel {
    /// Compiles `bytes` for one row of `inputs.len()` features. Fails on anything that is not
    /// such a model: bytes that are not ONNX, several inputs, a feature count the graph does
    /// not accept, operators tract cannot run, outputs that are not floats.
    pub fn load(bytes: &[u8], inputs: &[String]) -> Result<Self, EngineError> {
        let invalid = |e: &dyn std::fmt::Display| EngineError::InvalidModel(format!("{e:#}"));
        if inputs.is_empty() {
            return Err(EngineError::InvalidModel(
                "a model needs at least one named input".to_owned(),
            ));
        }
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| invalid(&e))?;
        let declared = model.input_outlets().map_err(|e| invalid(&e))?.len();
        if declared != 1 {
            return Err(EngineError::InvalidModel(format!(
                "the model has {declared} input tensors; custom models take exactly one, \
                 of shape [batch, features]"
            )));
        }
        model
            .set_input_fact(0, f32::fact([1, inputs.len()]).into())
            .map_err(|e| invalid(&e))?;
        let typed = model.into_optimized().map_err(|e| {
            invalid(&format!(
                "the model does not take {} features: {e:#}",
                inputs.len()
            ))
        })?;
        let outputs = typed
            .output_outlets()
            .map_err(|e| invalid(&e))?
            .iter()
            .map(|outlet| {
                typed
                    .outlet_label(*outlet)
                    .map_or_else(|| typed.node(outlet.node).name.clone(), str::to_owned)
            })
            .collect();
        let plan = typed.into_runnable().map_err(|e| invalid(&e))?;
        let loaded = OnnxModel {
            plan,
            inputs: inputs.to_vec(),
            outputs,
        };
        // A dry run catches graphs that compile but cannot run (non-float outputs, shape errors).
        loaded.run(&vec![0.0; inputs.len()])?;
        Ok(loaded)
    }

    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// The feature row for `values`, which must name every declared input, and nothing else,
    /// with a finite number.
    pub fn row(&self, values: &Map<String, Value>) -> Result<Vec<f32>, EngineError> {
        let invalid = |message: String| EngineError::InvalidInput { message };
        if let Some(unknown) = values.keys().find(|k| !self.inputs.contains(k)) {
            return Err(invalid(format!(
                "unknown input {unknown:?}; the model takes {}",
                self.inputs.join(", ")
            )));
        }
        self.inputs
            .iter()
            .map(|name| {
                let value = values
                    .get(name)
                    .ok_or_else(|| invalid(format!("missing input {name:?}")))?;
                value
                    .as_f64()
                    .map(|v| v as f32)
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        invalid(format!(
                            "input {name:?} must be a finite number, got {value}"
                        ))
                    })
            })
            .collect()
    }

    /// Runs the model on one feature row (see [`OnnxModel::row`]).
    pub fn run(&self, row: &[f32]) -> Result<Vec<OnnxOutput>, EngineError> {
        let failed = |e: &dyn std::fmt::Display| EngineError::Inference(format!("{e:#}"));
        if row.len() != self.inputs.len() {
            return Err(EngineError::InvalidInput {
                message: format!("expected {} inputs, got {}", self.inputs.len(), row.len()),
            });
        }
        let input = Tensor::from_shape(&[1, row.len()], row).map_err(|e| failed(&e))?;
        let results = self.plan.run(tvec!(input.into())).map_err(|e| failed(&e))?;
        results
            .iter()
            .zip(&self.outputs)
            .map(|(tensor, name)| {
                let view = tensor
                    .to_plain_array_view::<f32>()
                    .map_err(|e| failed(&format!("output {name} is not a float tensor: {e}")))?;
                let values: Vec<f64> = view.iter().map(|v| f64::from(*v)).collect();
                if values.iter().any(|v| !v.is_finite()) {
                    return Err(EngineError::Inference(format!(
                        "output {name} is not a finite number"
                    )));
                }
                Ok(OnnxOutput {
                    name: name.clone(),
                    shape: view.shape().to_vec(),
                    values,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CHURN_SCORE: &[u8] = include_bytes!("../tests/fixtures/churn_score.onnx");

    fn inputs() -> Vec<String> {
        ["recency_days", "orders", "spend"]
            .map(str::to_owned)
            .to_vec()
    }

    fn expected(recency_days: f64, orders: f64, spend: f64) -> f64 {
        let logit = 0.05 * recency_days - 0.4 * orders - 0.01 * spend + 0.5;
        1.0 / (1.0 + (-logit).exp())
    }

    #[test]
    fn the_fixture_model_computes_its_planted_formula() {
        let model = OnnxModel::load(CHURN_SCORE, &inputs()).unwrap();
        let values = json!({"recency_days": 30, "orders": 2, "spend": 40.5});
        let row = model.row(values.as_object().unwrap()).unwrap();
        let outputs = model.run(&row).unwrap();
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].name, "churn");
        assert_eq!(outputs[0].shape, [1, 1]);
        assert!((outputs[0].values[0] - expected(30.0, 2.0, 40.5)).abs() < 1e-5);
    }

    #[test]
    fn inputs_must_match_the_declared_names_and_be_numbers() {
        let model = OnnxModel::load(CHURN_SCORE, &inputs()).unwrap();
        for (values, message) in [
            (
                json!({"recency_days": 1, "orders": 2}),
                "missing input \"spend\"",
            ),
            (
                json!({"recency_days": 1, "orders": 2, "spend": 3, "age": 4}),
                "unknown input \"age\"",
            ),
            (
                json!({"recency_days": "soon", "orders": 2, "spend": 3}),
                "must be a finite number",
            ),
            (
                json!({"recency_days": 1e300, "orders": 2, "spend": 3}),
                "must be a finite number",
            ),
        ] {
            let error = model.row(values.as_object().unwrap()).unwrap_err();
            assert!(error.to_string().contains(message), "{error}");
        }
    }

    #[test]
    fn what_is_not_a_usable_model_is_refused_when_loading() {
        assert!(matches!(
            OnnxModel::load(b"not a model", &inputs()),
            Err(EngineError::InvalidModel(_))
        ));
        let two = ["a", "b"].map(str::to_owned).to_vec();
        let error = OnnxModel::load(CHURN_SCORE, &two).unwrap_err();
        assert!(
            error.to_string().contains("does not take 2 features"),
            "{error}"
        );
        assert!(OnnxModel::load(CHURN_SCORE, &[]).is_err());
    }
}
