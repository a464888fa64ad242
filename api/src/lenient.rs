//! Lenient decoding shared by the API types.
//!
//! Go clients write a nil slice or map as `null` when the field has no `omitempty`, and
//! they may leave out a `spec` whose fields are all optional. Both mean "empty" in
//! Kubernetes, so the types here decode them as empty values instead of failing.

use serde::{Deserialize, Deserializer};

/// Decodes `null` (or an absent field, together with `#[serde(default)]`) as `T::default()`.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Implements `Serialize` and `Deserialize` for a spec type derived with
/// `#[serde(remote = "Self")]`, so that a missing or `null` spec decodes as the default spec.
///
/// The derive with `remote = "Self"` produces inherent `serialize`/`deserialize` functions;
/// this macro wraps them into the trait implementations.
macro_rules! default_when_absent {
    ($ty:ty) => {
        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                struct PresentOrDefault;

                impl<'de> ::serde::de::Visitor<'de> for PresentOrDefault {
                    type Value = $ty;

                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str(concat!("a ", stringify!($ty), " object or null"))
                    }

                    fn visit_none<E: ::serde::de::Error>(self) -> Result<$ty, E> {
                        Ok(<$ty as Default>::default())
                    }

                    fn visit_unit<E: ::serde::de::Error>(self) -> Result<$ty, E> {
                        Ok(<$ty as Default>::default())
                    }

                    fn visit_some<D: ::serde::Deserializer<'de>>(
                        self,
                        deserializer: D,
                    ) -> Result<$ty, D::Error> {
                        <$ty>::deserialize(deserializer)
                    }
                }

                deserializer.deserialize_option(PresentOrDefault)
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$ty>::serialize(self, serializer)
            }
        }
    };
}

pub(crate) use default_when_absent;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, Default, PartialEq)]
    struct Holder {
        #[serde(default, deserialize_with = "null_as_default")]
        items: Vec<String>,
    }

    #[test]
    fn null_list_decodes_as_empty() {
        let held: Holder = serde_json::from_str(r#"{"items": null}"#).unwrap();
        assert!(held.items.is_empty());
    }

    #[test]
    fn absent_list_decodes_as_empty() {
        let held: Holder = serde_json::from_str("{}").unwrap();
        assert!(held.items.is_empty());
    }

    #[test]
    fn present_list_decodes_as_given() {
        let held: Holder = serde_json::from_str(r#"{"items": ["a"]}"#).unwrap();
        assert_eq!(held.items, vec!["a".to_string()]);
    }
}
