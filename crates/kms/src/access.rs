//! Who may do what on the key service: the least role each route needs, after Key
//! Protect's table (a service that wraps and unwraps, as COS does with its service
//! authorization, needs only reader). One line per route; docs/KEYS.md shows the table.

use iam::Role;

use super::route::{KeyAction, Route};

/// The least role `route` needs (`None`: no token needed, the token exchange itself).
pub fn least_role(route: &Route) -> Option<Role> {
    Some(match route {
        Route::Token => return None,
        Route::ListKeys
        | Route::CountKeys
        | Route::GetKey(_)
        | Route::KeyMetadata(_)
        | Route::Versions(_)
        | Route::Registrations(_)
        | Route::GetKeyPolicies(_)
        | Route::GetInstancePolicies
        | Route::BucketRoot(_)
        | Route::ListRings => Role::Reader,
        Route::Action(_, KeyAction::Wrap | KeyAction::Unwrap | KeyAction::Rewrap) => Role::Reader,
        Route::CreateKey
        | Route::CreateKeyWithPolicies
        | Route::Action(_, KeyAction::Rotate)
        | Route::CreateAlias(..)
        | Route::DeleteAlias(..)
        | Route::BucketKey(_)
        | Route::RemoveBucketKey(_)
        | Route::RetainBucket(_)
        | Route::DefaultKey
        | Route::CreateImportToken
        | Route::GetImportToken => Role::Writer,
        Route::DeleteKey(_)
        | Route::PurgeKey(_)
        | Route::RestoreKey(_)
        | Route::PutKeyPolicies(_)
        | Route::PutInstancePolicies
        | Route::Events(_)
        | Route::CreateRing(_)
        | Route::DeleteRing(_)
        | Route::PatchKey(_)
        | Route::Action(
            _,
            KeyAction::Enable | KeyAction::Disable | KeyAction::SetForDeletion | KeyAction::UnsetForDeletion,
        ) => Role::Manager,
    })
}

/// Whether `role` reaches `least`.
pub fn allows(role: Role, least: Role) -> bool {
    let rank = |r: Role| Role::ALL.iter().position(|x| *x == r).unwrap_or(0);
    rank(role) >= rank(least)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest_and_the_table_holds() {
        let k = || "k".to_owned();
        let wrap = Route::Action(k(), KeyAction::Wrap);
        let create = Route::CreateKey;
        let delete = Route::DeleteKey(k());
        let expect = [
            (Role::Reader, [true, false, false]),
            (Role::Writer, [true, true, false]),
            (Role::Manager, [true, true, true]),
        ];
        for (role, cells) in expect {
            for (route, want) in [&wrap, &create, &delete].into_iter().zip(cells) {
                let least = least_role(route).unwrap();
                assert_eq!(allows(role, least), want, "{role} on {route:?}");
            }
        }
        assert_eq!(least_role(&Route::Token), None);
    }
}
