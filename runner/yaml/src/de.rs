//! serde over a [`Node`]: any `Deserialize` type from a located tree, with errors that carry
//! the key path and the position of the node at fault (serde_yaml gave only the document's
//! position for most errors inside nested structs).
//!
//! Scalars behave as serde_yaml made them behave, so models written against it keep their
//! meaning: a string field takes any scalar's text (`version: 1.20` is `"1.20"`), typed fields
//! and untyped values (`serde_json::Value`) take the schema's resolution.

use std::collections::HashSet;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};
use serde_json::Value;

use crate::error::Error;
use crate::node::{Node, NodeKind};

/// Deserialize `T` from `node`; `key_path` is the node's own path (empty for a document
/// root), which error messages extend (`base.key[2].field`).
pub fn from_node<T: DeserializeOwned>(node: &Node, key_path: &str) -> Result<T, Error> {
    let de = NodeDe {
        node,
        path: key_path.to_owned(),
    };
    T::deserialize(de).map_err(|e| match e.at {
        Some((line, col, path)) => Error::at(&node.src, line, col, path, e.msg),
        None => node.error(key_path, e.msg),
    })
}

/// A serde error, located by the innermost node that saw it.
#[derive(Debug)]
pub struct DeError {
    msg: String,
    at: Option<(usize, usize, String)>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            msg: msg.to_string(),
            at: None,
        }
    }
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl NodeDe<'_> {
    /// Give an error without a position this node's position and path.
    fn locate<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|mut e| {
            if e.at.is_none() {
                e.at = Some((self.node.line, self.node.col, self.path.clone()));
            }
            e
        })
    }

    fn invalid_type(&self, exp: &dyn de::Expected) -> DeError {
        let resolved = self.node.scalar_value();
        let unexpected = match (&self.node.kind, &resolved) {
            (NodeKind::Seq(_), _) => Unexpected::Seq,
            (NodeKind::Map(_), _) => Unexpected::Map,
            (_, Some(Value::Bool(b))) => Unexpected::Bool(*b),
            (_, Some(Value::Number(n))) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Unexpected::Unsigned(u),
                (_, Some(i), _) => Unexpected::Signed(i),
                (_, _, Some(f)) => Unexpected::Float(f),
                _ => Unexpected::Other("number"),
            },
            (_, Some(Value::String(s))) => Unexpected::Str(s),
            _ => Unexpected::Unit,
        };
        de::Error::invalid_type(unexpected, exp)
    }

    fn visit_number<'de, V: Visitor<'de>>(
        &self,
        n: &serde_json::Number,
        v: V,
    ) -> Result<V::Value, DeError> {
        if let Some(u) = n.as_u64() {
            v.visit_u64(u)
        } else if let Some(i) = n.as_i64() {
            v.visit_i64(i)
        } else {
            v.visit_f64(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    /// `key:` with nothing after it, which serde_yaml read as an empty list or mapping where
    /// one was expected; kept so files written against it keep loading.
    fn is_empty_value(&self) -> bool {
        matches!(&self.node.kind, NodeKind::Scalar { text, plain: true, tag: None } if text.is_empty())
    }

    fn seq(&self) -> Option<SeqDe<'_>> {
        let items = match self.node.as_seq() {
            Some(items) => items,
            None if self.is_empty_value() => &[],
            None => return None,
        };
        Some(SeqDe {
            items: items.iter(),
            path: &self.path,
            index: 0,
        })
    }

    fn map(&self) -> Option<MapDe<'_>> {
        let pairs = match self.node.as_map() {
            Some(pairs) => pairs,
            None if self.is_empty_value() => &[],
            None => return None,
        };
        Some(MapDe {
            pairs: pairs.iter(),
            path: &self.path,
            value: None,
            seen: HashSet::new(),
        })
    }
}

macro_rules! numbers {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            let r = match self.node.scalar_value() {
                Some(Value::Number(n)) => self.visit_number(&n, v),
                _ => Err(self.invalid_type(&v)),
            };
            self.locate(r)
        }
    )*};
}

macro_rules! strings {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            let r = match &self.node.kind {
                NodeKind::Scalar { text, .. } => v.visit_str(text),
                _ => Err(self.invalid_type(&v)),
            };
            self.locate(r)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            NodeKind::Seq(_) => match self.seq() {
                Some(s) => v.visit_seq(s),
                None => Err(self.invalid_type(&v)),
            },
            NodeKind::Map(_) => match self.map() {
                Some(m) => v.visit_map(m),
                None => Err(self.invalid_type(&v)),
            },
            NodeKind::Scalar { text, .. } => match self.node.scalar_value() {
                Some(Value::Null) => v.visit_unit(),
                Some(Value::Bool(b)) => v.visit_bool(b),
                Some(Value::Number(n)) => self.visit_number(&n, v),
                _ => v.visit_str(text),
            },
        };
        self.locate(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.node.scalar_value() {
            Some(Value::Bool(b)) => v.visit_bool(b),
            _ => Err(self.invalid_type(&v)),
        };
        self.locate(r)
    }

    numbers!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64);

    strings!(deserialize_char deserialize_str deserialize_string deserialize_identifier
        deserialize_bytes deserialize_byte_buf);

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            let r = v.visit_none();
            self.locate(r)
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = if self.node.is_null() {
            v.visit_unit()
        } else {
            Err(self.invalid_type(&v))
        };
        self.locate(r)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.seq() {
            Some(s) => v.visit_seq(s),
            None => Err(self.invalid_type(&v)),
        };
        self.locate(r)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.map() {
            Some(m) => v.visit_map(m),
            None => Err(self.invalid_type(&v)),
        };
        self.locate(r)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            NodeKind::Scalar { text, .. } => v.visit_enum(
                IntoDeserializer::<DeError>::into_deserializer(text.as_str()),
            ),
            NodeKind::Map(pairs) if pairs.len() == 1 => {
                let (key, value) = (&pairs[0].0, &pairs[0].1);
                v.visit_enum(EnumDe {
                    key,
                    value,
                    path: child(&self.path, &key.key_text()),
                })
            }
            _ => Err(self.invalid_type(&v)),
        };
        self.locate(r)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}

struct SeqDe<'a> {
    items: std::slice::Iter<'a, Node>,
    path: &'a str,
    index: usize,
}

impl<'de> SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        seed.deserialize(NodeDe { node, path }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'a> {
    pairs: std::slice::Iter<'a, (Node, Node)>,
    path: &'a str,
    /// The value (and its path) of the key just read.
    value: Option<(&'a Node, String)>,
    seen: HashSet<String>,
}

impl<'de> MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.pairs.next() else {
            return Ok(None);
        };
        let text = key.key_text();
        let path = child(self.path, &text);
        if !self.seen.insert(text.clone()) {
            return Err(DeError {
                msg: format!("duplicate key `{text}`"),
                at: Some((key.line, key.col, path)),
            });
        }
        self.value = Some((value, path.clone()));
        seed.deserialize(NodeDe { node: key, path }).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some((node, path)) => seed.deserialize(NodeDe { node, path }),
            None => Err(de::Error::custom(
                "a mapping value was asked for before its key",
            )),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.pairs.len())
    }
}

struct EnumDe<'a> {
    key: &'a Node,
    value: &'a Node,
    path: String,
}

impl<'de, 'a> EnumAccess<'de> for EnumDe<'a> {
    type Error = DeError;
    type Variant = NodeDe<'a>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, NodeDe<'a>), DeError> {
        let v = seed.deserialize(NodeDe {
            node: self.key,
            path: self.path.clone(),
        })?;
        Ok((
            v,
            NodeDe {
                node: self.value,
                path: self.path,
            },
        ))
    }
}

impl<'de> VariantAccess<'de> for NodeDe<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        if self.node.is_null() {
            Ok(())
        } else {
            let r = Err(self.invalid_type(&"nothing after a unit variant"));
            self.locate(r)
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, v)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self, v)
    }
}
