//! The `geoPoint` field: `{"lon": .., "lat": ..}` in degrees, normalised and validated as
//! PocketBase does (probed against PocketBase 0.40).

use serde_json::{Map, Value, json};

use super::canonical_number;
use crate::error::FieldError;

/// PocketBase's blank point, the value of an unset field.
pub fn zero() -> Value {
    json!({"lon": 0, "lat": 0})
}

/// A submitted value as the stored point. As in PocketBase, what does not read as a point
/// becomes the blank point rather than an error: an object whose `lon` or `lat` is not a
/// number, a string that is not such an object's JSON, `null`, arrays, numbers. A missing
/// coordinate is 0 and other keys are dropped.
pub fn normalize(v: &Value) -> Value {
    let parsed;
    let obj = match v {
        Value::Object(o) => o,
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(o)) => {
                parsed = o;
                &parsed
            }
            _ => return zero(),
        },
        _ => return zero(),
    };
    match (coordinate(obj, "lon"), coordinate(obj, "lat")) {
        (Some(lon), Some(lat)) => {
            json!({"lon": canonical_number(lon), "lat": canonical_number(lat)})
        }
        _ => zero(),
    }
}

fn coordinate(obj: &Map<String, Value>, key: &str) -> Option<f64> {
    match obj.get(key) {
        None | Some(Value::Null) => Some(0.0),
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => None,
    }
}

/// Whether a stored point is PocketBase's blank one (what `required` refuses).
pub fn is_blank(v: &Value) -> bool {
    let n = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    n("lon") == 0.0 && n("lat") == 0.0
}

pub fn validate(v: &Value, required: bool) -> Result<(), FieldError> {
    if is_blank(v) {
        return if required {
            Err(FieldError::required())
        } else {
            Ok(())
        };
    }
    let n = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    if !(-180.0..=180.0).contains(&n("lon")) {
        return Err(FieldError::new(
            "validation_invalid_longitude",
            "Longitude must be between -180 and 180 degrees.",
        ));
    }
    if !(-90.0..=90.0).contains(&n("lat")) {
        return Err(FieldError::new(
            "validation_invalid_latitude",
            "Latitude must be between -90 and 90 degrees.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What PocketBase 0.40 stored for each of these submissions (probed).
    #[test]
    fn submissions_normalise_as_pocketbase() {
        let cases = [
            (
                json!({"lon": 23.32, "lat": 42.69}),
                json!({"lon": 23.32, "lat": 42.69}),
            ),
            (json!({"lon": "1", "lat": 1}), zero()),
            (json!({"lat": 1}), json!({"lon": 0, "lat": 1})),
            (json!("x"), zero()),
            (Value::Null, zero()),
            (
                json!({"lon": 1, "lat": 2, "x": 3}),
                json!({"lon": 1, "lat": 2}),
            ),
            (json!("{\"lon\":5,\"lat\":6}"), json!({"lon": 5, "lat": 6})),
            (json!([1, 2]), zero()),
            (
                json!({"lon": 1.5e1, "lat": -90}),
                json!({"lon": 15, "lat": -90}),
            ),
        ];
        for (input, stored) in cases {
            let out = normalize(&input);
            assert_eq!(out, stored, "{input}");
            assert_eq!(out.to_string(), stored.to_string(), "key order of {input}");
        }
    }

    #[test]
    fn ranges_and_required_answer_pocketbase_codes() {
        let code = |v: Value, req: bool| validate(&normalize(&v), req).err().map(|e| e.code);
        assert_eq!(
            code(json!({"lon": 200, "lat": 1}), false).as_deref(),
            Some("validation_invalid_longitude")
        );
        assert_eq!(
            code(json!({"lon": 1, "lat": 95}), false).as_deref(),
            Some("validation_invalid_latitude")
        );
        assert_eq!(
            code(json!({"lon": 0, "lat": 0}), true).as_deref(),
            Some("validation_required")
        );
        assert_eq!(code(json!({"lon": 0, "lat": 1}), true), None);
        assert_eq!(code(json!({"lon": 180, "lat": -90}), false), None);
    }
}
