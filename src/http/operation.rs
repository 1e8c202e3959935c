//! The shape of a GraphQL operation as the authorizer needs it: query, mutation or
//! subscription, and the names of its root fields (through fragments, without aliases).

use std::collections::{BTreeSet, HashMap};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned};

use crate::auth::token::Operation;

/// Distinct root field names collected at most; more can only be invalid anyway.
const MAX_ROOT_FIELDS: usize = 256;

/// Kind and root fields of the operation a request will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationShape {
    pub kind: Operation,
    /// Distinct root field names (aliases resolved to their fields).
    pub root_fields: Vec<String>,
    /// Root selections, counting each alias separately.
    pub root_selections: usize,
    /// Field selections in the whole document (operation and fragments, aliases counted):
    /// a bound on its size, checked before anything runs.
    pub document_fields: usize,
}

/// The shape of the operation `operation_name` selects in `query`; `None` when the
/// document does not parse or names no single operation. The HTTP handler takes the shape
/// of the document it already parsed ([`shape_of`]); this is for tests.
#[cfg(test)]
fn shape(query: &str, operation_name: Option<&str>) -> Option<OperationShape> {
    shape_of(&async_graphql::parser::parse_query(query).ok()?, operation_name)
}

/// The shape of the operation `operation_name` selects in a parsed document.
pub fn shape_of(document: &ExecutableDocument, operation_name: Option<&str>) -> Option<OperationShape> {
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name)?,
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next()?,
        _ => return None,
    };
    let kind = match operation.node.ty {
        OperationType::Query => Operation::Query,
        OperationType::Mutation => Operation::Mutation,
        OperationType::Subscription => Operation::Subscription,
    };
    let mut walk = Walk {
        fragments: &document.fragments,
        fields: BTreeSet::new(),
        selections: 0,
        visited: Vec::new(),
    };
    walk.collect(&operation.node.selection_set.node);
    Some(OperationShape {
        kind,
        root_fields: walk.fields.into_iter().collect(),
        root_selections: walk.selections,
        document_fields: count_fields(&operation.node.selection_set.node)
            + document
                .fragments
                .values()
                .map(|f| count_fields(&f.node.selection_set.node))
                .sum::<usize>(),
    })
}

/// Field selections in a selection set, at every depth (fragment spreads not expanded).
fn count_fields(selection_set: &SelectionSet) -> usize {
    selection_set
        .items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) => 1 + count_fields(&field.node.selection_set.node),
            Selection::InlineFragment(fragment) => count_fields(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Walks the root selection set through fragments.
struct Walk<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    fields: BTreeSet<String>,
    selections: usize,
    visited: Vec<&'a str>,
}

impl<'a> Walk<'a> {
    fn collect(&mut self, selection_set: &'a SelectionSet) {
        for selection in &selection_set.items {
            if self.fields.len() >= MAX_ROOT_FIELDS {
                return;
            }
            match &selection.node {
                Selection::Field(field) => {
                    self.selections += 1;
                    self.fields.insert(field.node.name.node.to_string());
                }
                Selection::InlineFragment(fragment) => self.collect(&fragment.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if self.visited.contains(&name) {
                        continue;
                    }
                    self.visited.push(name);
                    if let Some(fragment) = self.fragments.get(&spread.node.fragment_name.node) {
                        self.collect(&fragment.node.selection_set.node);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(shape: Option<OperationShape>) -> (Operation, Vec<String>) {
        let shape = shape.expect("parses");
        (shape.kind, shape.root_fields)
    }

    #[test]
    fn finds_kind_and_root_fields_through_aliases_and_fragments() {
        let (kind, root) = fields(shape(
            "mutation M { a: createDevice(x: 1) { id } ...F } fragment F on Mutation { deleteDevice { id } ... on Mutation { logout { revoked } } }",
            None,
        ));
        assert_eq!(kind, Operation::Mutation);
        assert_eq!(root, ["createDevice", "deleteDevice", "logout"]);
    }

    #[test]
    fn picks_the_named_operation() {
        let doc = "query A { me { role } } mutation B { logout { revoked } }";
        assert_eq!(fields(shape(doc, Some("B"))).0, Operation::Mutation);
        assert_eq!(fields(shape(doc, Some("A"))).0, Operation::Query);
        assert!(shape(doc, None).is_none());
        assert!(shape("{ unclosed", None).is_none());
    }

    #[test]
    fn survives_fragment_cycles() {
        let (_, root) = fields(shape("{ ...F } fragment F on Query { me { role } ...F }", None));
        assert_eq!(root, ["me"]);
    }
}
