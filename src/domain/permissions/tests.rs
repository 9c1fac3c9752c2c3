use super::*;
use Environment::{Prod, Test};
use Permission::*;

const BOTH: &[Environment] = &[Test, Prod];
const TEST_ONLY: &[Environment] = &[Test];
const PROD_ONLY: &[Environment] = &[Prod];

fn global(role: BuiltinRole, envs: &[Environment]) -> Binding {
    Binding::builtin(role, Scope::Global, envs)
}

fn on(system: &str, role: BuiltinRole, envs: &[Environment]) -> Binding {
    Binding::builtin(role, Scope::System(system.to_owned()), envs)
}

fn custom(permissions: &[Permission], scope: Scope, envs: &[Environment]) -> Binding {
    Binding {
        role: "custom".to_owned(),
        permissions: permissions.to_vec(),
        scope,
        allowed_environments: envs.to_vec(),
    }
}

fn shop(role: Option<ResourceRole>) -> Target {
    Target::system("shop", role)
}

fn check(
    bindings: &[Binding],
    permission: Permission,
    target: &Target,
    environment: Option<Environment>,
) -> Decision {
    evaluate(
        bindings,
        &AccessRequest {
            permission,
            target,
            environment,
        },
    )
}

fn missing(permission: Permission) -> Decision {
    Decision::Deny(DenyReason::MissingPermission { permission })
}

fn env_denied(environment: Environment, permission: Permission) -> Decision {
    Decision::Deny(DenyReason::EnvironmentNotAllowed {
        environment,
        permission,
    })
}

fn too_weak(role: ResourceRole, permission: Permission) -> Decision {
    Decision::Deny(DenyReason::ResourceRoleTooWeak { role, permission })
}

fn no_role(permission: Permission) -> Decision {
    Decision::Deny(DenyReason::NoResourceRole {
        system: "shop".to_owned(),
        permission,
    })
}

#[test]
fn permission_strings_match_the_design() {
    let names = [
        "system:read",
        "system:write",
        "system:delete",
        "service:read",
        "service:create",
        "service:delete",
        "vm:read",
        "vm:create",
        "vm:operate",
        "vm:delete",
        "approval:approve",
        "approval:view",
        "cluster:manage",
        "template:manage",
        "rbac:manage",
        "audit:read",
        "platform:admin",
    ];
    assert_eq!(Permission::ALL.len(), names.len());
    for (p, name) in Permission::ALL.into_iter().zip(names) {
        assert_eq!(p.as_str(), name);
        assert_eq!(p.to_string(), name);
        assert_eq!(name.parse::<Permission>(), Ok(p));
        assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(name));
        assert_eq!(
            serde_json::from_value::<Permission>(serde_json::json!(name)).unwrap(),
            p
        );
    }
    for wildcard in ["*:*", "system:*", "*", "vm:*", "VM:READ"] {
        let err = wildcard.parse::<Permission>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("unknown permission {wildcard:?}")),
            "{err}"
        );
        assert!(serde_json::from_value::<Permission>(serde_json::json!(wildcard)).is_err());
    }
}

#[test]
fn only_approval_permissions_are_approval() {
    for p in Permission::ALL {
        assert_eq!(
            p.is_approval(),
            matches!(p, ApprovalApprove | ApprovalView),
            "{p}"
        );
    }
}

#[test]
fn builtin_roles_have_exactly_their_permissions() {
    let expected: [(BuiltinRole, &str, &[Permission]); 5] = [
        (
            BuiltinRole::PlatformAdmin,
            "platform-admin",
            &[PlatformAdmin],
        ),
        (
            BuiltinRole::SystemAdmin,
            "system-admin",
            &[
                SystemRead,
                SystemWrite,
                SystemDelete,
                ServiceRead,
                ServiceCreate,
                ServiceDelete,
                VmRead,
                VmCreate,
                VmOperate,
                VmDelete,
                RbacManage,
                AuditRead,
            ],
        ),
        (
            BuiltinRole::Approver,
            "approver",
            &[
                ApprovalApprove,
                ApprovalView,
                VmRead,
                SystemRead,
                ServiceRead,
            ],
        ),
        (
            BuiltinRole::Operator,
            "operator",
            &[SystemRead, ServiceRead, VmRead, VmCreate, VmOperate],
        ),
        (
            BuiltinRole::Viewer,
            "viewer",
            &[SystemRead, ServiceRead, VmRead],
        ),
    ];
    assert_eq!(BuiltinRole::ALL.len(), expected.len());
    for ((role, name, permissions), listed) in expected.into_iter().zip(BuiltinRole::ALL) {
        assert_eq!(role, listed);
        assert_eq!(role.name(), name);
        assert_eq!(role.to_string(), name);
        assert_eq!(name.parse::<BuiltinRole>(), Ok(role));
        let got: BTreeSet<_> = role.permissions().iter().copied().collect();
        let want: BTreeSet<_> = permissions.iter().copied().collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(
            role.permissions().len(),
            permissions.len(),
            "{name} has duplicates"
        );
    }
    assert!("role-viewer".parse::<BuiltinRole>().is_err());
}

#[test]
fn resource_role_grants_matrix() {
    use ResourceRole::*;
    // Permissions each role grants, written out independently of `grants`.
    let viewer: &[Permission] = &[SystemRead, ServiceRead, VmRead];
    let member: &[Permission] = &[
        SystemRead,
        ServiceRead,
        VmRead,
        ServiceCreate,
        VmCreate,
        VmOperate,
    ];
    let admin: &[Permission] = &[
        SystemRead,
        ServiceRead,
        VmRead,
        ServiceCreate,
        VmCreate,
        VmOperate,
        SystemWrite,
        SystemDelete,
        ServiceDelete,
        VmDelete,
        RbacManage,
    ];
    let expected = [
        (Owner, admin),
        (Admin, admin),
        (Member, member),
        (Viewer, viewer),
    ];
    assert_eq!(ResourceRole::ALL.len(), expected.len());
    for (role, granted) in expected {
        for p in Permission::ALL {
            assert_eq!(role.grants(p), granted.contains(&p), "{role} {p}");
        }
    }
    for p in [
        ApprovalApprove,
        ApprovalView,
        ClusterManage,
        TemplateManage,
        PlatformAdmin,
        AuditRead,
    ] {
        for role in ResourceRole::ALL {
            assert!(!role.grants(p), "{role} must never grant {p}");
        }
    }
}

#[test]
fn resource_role_strings() {
    let names = ["owner", "admin", "member", "viewer"];
    for (role, name) in ResourceRole::ALL.into_iter().zip(names) {
        assert_eq!(role.as_str(), name);
        assert_eq!(role.to_string(), name);
        assert_eq!(name.parse::<ResourceRole>(), Ok(role));
        assert_eq!(serde_json::to_value(role).unwrap(), serde_json::json!(name));
    }
    assert!("Owner".parse::<ResourceRole>().is_err());
}

/// (name, bindings, permission, target, environment, expected decision)
type Case<'a> = (
    &'a str,
    Vec<&'a Binding>,
    Permission,
    Target,
    Option<Environment>,
    Decision,
);

#[test]
fn evaluate_decision_table() {
    use ResourceRole::{Admin, Member, Owner, Viewer};
    let op_both = global(BuiltinRole::Operator, BOTH);
    let op_test = global(BuiltinRole::Operator, TEST_ONLY);
    let op_prod_only = global(BuiltinRole::Operator, PROD_ONLY);
    let op_no_envs = global(BuiltinRole::Operator, &[]);
    let viewer_both = global(BuiltinRole::Viewer, BOTH);
    let admin_test = global(BuiltinRole::PlatformAdmin, TEST_ONLY);
    let admin_both = global(BuiltinRole::PlatformAdmin, BOTH);
    let approver_both = global(BuiltinRole::Approver, BOTH);
    let approver_test = global(BuiltinRole::Approver, TEST_ONLY);
    let sysadmin_global = global(BuiltinRole::SystemAdmin, BOTH);
    let shop_operator_test = on("shop", BuiltinRole::Operator, TEST_ONLY);
    let shop_viewer = on("shop", BuiltinRole::Viewer, BOTH);
    let shop_sysadmin = on("shop", BuiltinRole::SystemAdmin, TEST_ONLY);
    let other_operator = on("other", BuiltinRole::Operator, BOTH);
    let other_admin = on("other", BuiltinRole::PlatformAdmin, BOTH);
    let cluster_global = custom(&[ClusterManage], Scope::Global, TEST_ONLY);
    let cluster_on_shop = custom(&[ClusterManage], Scope::System("shop".into()), BOTH);
    let no_envs_sysadmin = custom(
        BuiltinRole::SystemAdmin.permissions(),
        Scope::System("shop".into()),
        &[],
    );

    let platform = Target::Platform;
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // a + e: environments a binding allows.
        ("operator in test, member, test", vec![&op_test], VmCreate, shop(Some(Member)), Some(Test), Decision::Allow),
        ("operator in test, member, prod", vec![&op_test], VmCreate, shop(Some(Member)), Some(Prod), env_denied(Prod, VmCreate)),
        ("operator in both, member, prod", vec![&op_both], VmCreate, shop(Some(Member)), Some(Prod), Decision::Allow),
        ("operator in both, member, operate", vec![&op_both], VmOperate, shop(Some(Member)), Some(Prod), Decision::Allow),
        ("prod-only binding, test", vec![&op_prod_only], VmCreate, shop(Some(Owner)), Some(Test), env_denied(Test, VmCreate)),
        ("binding without environments", vec![&op_no_envs], VmCreate, shop(Some(Owner)), Some(Test), env_denied(Test, VmCreate)),
        // e: permission missing from every binding.
        ("viewer binding cannot create", vec![&viewer_both], VmCreate, shop(Some(Owner)), Some(Test), missing(VmCreate)),
        ("owner without bindings cannot create VMs", vec![], VmCreate, shop(Some(Owner)), Some(Test), missing(VmCreate)),
        ("operator cannot delete VMs", vec![&op_both], VmDelete, shop(Some(Owner)), Some(Test), missing(VmDelete)),
        // e: the resource role caps the binding.
        ("operator binding, viewer role", vec![&op_both], VmCreate, shop(Some(Viewer)), Some(Test), too_weak(Viewer, VmCreate)),
        ("system-admin binding, member deletes", vec![&sysadmin_global], VmDelete, shop(Some(Member)), Some(Test), too_weak(Member, VmDelete)),
        ("system-admin binding, admin deletes", vec![&sysadmin_global], VmDelete, shop(Some(Admin)), Some(Prod), Decision::Allow),
        ("system-admin binding, owner deletes", vec![&sysadmin_global], VmDelete, shop(Some(Owner)), Some(Prod), Decision::Allow),
        // e: a binding scoped to the System is itself enough.
        ("shop operator, no role, test", vec![&shop_operator_test], VmCreate, shop(None), Some(Test), Decision::Allow),
        ("shop operator, no role, prod", vec![&shop_operator_test], VmCreate, shop(None), Some(Prod), env_denied(Prod, VmCreate)),
        ("shop operator, viewer role", vec![&shop_operator_test], VmCreate, shop(Some(Viewer)), Some(Test), Decision::Allow),
        ("visible through shop viewer, global operator, no role", vec![&shop_viewer, &op_both], VmCreate, shop(None), Some(Test), no_role(VmCreate)),
        // a + d: scope and visibility.
        ("global operator, no role", vec![&op_both], VmCreate, shop(None), Some(Test), Decision::Invisible),
        ("global operator, no role, read", vec![&op_both], VmRead, shop(None), None, Decision::Invisible),
        ("binding for another system", vec![&other_operator], VmCreate, shop(None), Some(Test), Decision::Invisible),
        ("binding for another system, member", vec![&other_operator], VmCreate, shop(Some(Member)), Some(Test), missing(VmCreate)),
        ("binding for another system applies there", vec![&other_operator], VmCreate, Target::system("other", None), Some(Test), Decision::Allow),
        ("no bindings, no role", vec![], SystemRead, shop(None), None, Decision::Invisible),
        ("test-only shop binding shows shop without environment", vec![&shop_operator_test], VmRead, shop(None), None, Decision::Allow),
        // b: platform:admin, only in its environments.
        ("platform admin, test VM", vec![&admin_test], VmDelete, shop(None), Some(Test), Decision::Allow),
        ("platform admin, prod VM", vec![&admin_test], VmDelete, shop(None), Some(Prod), env_denied(Prod, VmDelete)),
        ("platform admin, both, prod VM", vec![&admin_both], VmDelete, shop(None), Some(Prod), Decision::Allow),
        ("platform admin, system write", vec![&admin_test], SystemWrite, shop(None), None, Decision::Allow),
        ("platform admin, approve prod", vec![&admin_both], ApprovalApprove, shop(None), Some(Prod), Decision::Allow),
        ("platform admin, cluster", vec![&admin_test], ClusterManage, platform.clone(), None, Decision::Allow),
        ("platform admin, prod cluster", vec![&admin_test], ClusterManage, platform.clone(), Some(Prod), env_denied(Prod, ClusterManage)),
        ("platform admin, audit", vec![&admin_test], AuditRead, platform.clone(), None, Decision::Allow),
        ("platform admin of another system", vec![&other_admin], SystemRead, shop(None), None, Decision::Invisible),
        ("platform admin of another system, platform", vec![&other_admin], ClusterManage, platform.clone(), None, missing(ClusterManage)),
        // c: platform targets.
        ("cluster:manage global", vec![&cluster_global], ClusterManage, platform.clone(), None, Decision::Allow),
        ("cluster:manage global, prod", vec![&cluster_global], ClusterManage, platform.clone(), Some(Prod), env_denied(Prod, ClusterManage)),
        ("cluster:manage scoped to a system", vec![&cluster_on_shop], ClusterManage, platform.clone(), None, missing(ClusterManage)),
        ("system-admin cannot manage templates", vec![&sysadmin_global], TemplateManage, platform.clone(), None, missing(TemplateManage)),
        ("system-admin reads audit", vec![&sysadmin_global], AuditRead, platform.clone(), None, Decision::Allow),
        ("nobody manages rbac by default", vec![&op_both], RbacManage, platform.clone(), None, missing(RbacManage)),
        // d: approvers see tickets across Systems.
        ("approver, prod ticket", vec![&approver_both], ApprovalApprove, shop(None), Some(Prod), Decision::Allow),
        ("approver, view", vec![&approver_both], ApprovalView, shop(None), Some(Test), Decision::Allow),
        ("approver, no environment", vec![&approver_both], ApprovalApprove, shop(None), None, Decision::Allow),
        ("test approver, prod ticket", vec![&approver_test], ApprovalApprove, shop(None), Some(Prod), Decision::Invisible),
        ("test approver, prod ticket, member", vec![&approver_test], ApprovalApprove, shop(Some(Member)), Some(Prod), env_denied(Prod, ApprovalApprove)),
        ("approver approves despite viewer role", vec![&approver_both], ApprovalApprove, shop(Some(Viewer)), Some(Prod), Decision::Allow),
        ("approver cannot read VMs of unseen system", vec![&approver_both], VmRead, shop(None), None, Decision::Invisible),
        ("owner is no approver", vec![&op_both], ApprovalApprove, shop(Some(Owner)), Some(Test), missing(ApprovalApprove)),
        ("owner is no approver, no environment", vec![], ApprovalApprove, shop(Some(Owner)), None, too_weak(Owner, ApprovalApprove)),
        // f: requests on a System that are not about an environment.
        ("owner writes", vec![], SystemWrite, shop(Some(Owner)), None, Decision::Allow),
        ("admin deletes system", vec![], SystemDelete, shop(Some(Admin)), None, Decision::Allow),
        ("member cannot write", vec![], SystemWrite, shop(Some(Member)), None, too_weak(Member, SystemWrite)),
        ("member creates services", vec![], ServiceCreate, shop(Some(Member)), None, Decision::Allow),
        ("viewer cannot create services", vec![], ServiceCreate, shop(Some(Viewer)), None, too_weak(Viewer, ServiceCreate)),
        ("viewer reads", vec![], ServiceRead, shop(Some(Viewer)), None, Decision::Allow),
        ("admin manages members", vec![], RbacManage, shop(Some(Admin)), None, Decision::Allow),
        ("member cannot manage members", vec![], RbacManage, shop(Some(Member)), None, too_weak(Member, RbacManage)),
        ("global system-admin lifts member", vec![&sysadmin_global], SystemWrite, shop(Some(Member)), None, Decision::Allow),
        ("shop system-admin, no role", vec![&shop_sysadmin], SystemDelete, shop(None), None, Decision::Allow),
        ("shop viewer binding, no role, write", vec![&shop_viewer], SystemWrite, shop(None), None, missing(SystemWrite)),
        ("environments do not limit non-environment requests", vec![&no_envs_sysadmin], ServiceDelete, shop(None), None, Decision::Allow),
        ("... but do limit environment requests", vec![&no_envs_sysadmin], VmDelete, shop(None), Some(Test), env_denied(Test, VmDelete)),
    ];
    for (name, bindings, permission, target, environment, expected) in cases {
        let bindings: Vec<Binding> = bindings.into_iter().cloned().collect();
        assert_eq!(
            check(&bindings, permission, &target, environment),
            expected,
            "{name}"
        );
    }
}

#[test]
fn more_bindings_never_take_access_away() {
    // Adding an unrelated or weaker binding or a resource role keeps an allow.
    let base = vec![on("shop", BuiltinRole::Operator, BOTH)];
    let target = shop(None);
    assert_eq!(check(&base, VmCreate, &target, Some(Prod)), Decision::Allow);
    let extras = [
        global(BuiltinRole::Viewer, TEST_ONLY),
        on("other", BuiltinRole::Viewer, BOTH),
        custom(&[], Scope::Global, &[]),
    ];
    for extra in extras {
        let mut more = base.clone();
        more.push(extra.clone());
        assert_eq!(
            check(&more, VmCreate, &target, Some(Prod)),
            Decision::Allow,
            "{extra:?}"
        );
    }
    for role in ResourceRole::ALL {
        assert_eq!(
            check(&base, VmCreate, &shop(Some(role)), Some(Prod)),
            Decision::Allow,
            "{role}"
        );
    }
}

#[test]
fn deny_reasons_read_as_sentences() {
    let cases = [
        (
            DenyReason::MissingPermission {
                permission: VmCreate,
            },
            "missing permission vm:create",
        ),
        (
            DenyReason::EnvironmentNotAllowed {
                environment: Prod,
                permission: VmCreate,
            },
            "no binding allows prod for vm:create",
        ),
        (
            DenyReason::ResourceRoleTooWeak {
                role: ResourceRole::Viewer,
                permission: VmCreate,
            },
            "resource role viewer does not allow vm:create",
        ),
        (
            DenyReason::NoResourceRole {
                system: "shop".into(),
                permission: VmOperate,
            },
            "no resource role on system \"shop\" allows vm:operate",
        ),
    ];
    for (reason, text) in cases {
        assert_eq!(reason.to_string(), text);
    }
}

#[test]
fn decision_is_allowed() {
    assert!(Decision::Allow.is_allowed());
    assert!(!Decision::Invisible.is_allowed());
    assert!(!missing(VmRead).is_allowed());
}

#[test]
fn scope_covers() {
    let shop_target = shop(None);
    let cases = [
        (Scope::Global, &Target::Platform, true),
        (Scope::Global, &shop_target, true),
        (Scope::System("shop".into()), &shop_target, true),
        (Scope::System("shop".into()), &Target::Platform, false),
        (Scope::System("shopping".into()), &shop_target, false),
        (Scope::System("Shop".into()), &shop_target, false),
    ];
    for (scope, target, expected) in cases {
        assert_eq!(scope.covers(target), expected, "{scope:?} {target:?}");
    }
}

#[test]
fn effective_permissions_follow_environments() {
    let bindings = vec![
        global(BuiltinRole::Viewer, BOTH),
        on("shop", BuiltinRole::Operator, TEST_ONLY),
        custom(&[AuditRead], Scope::Global, PROD_ONLY),
    ];
    let set = |ps: &[Permission]| ps.iter().copied().collect::<BTreeSet<_>>();
    assert_eq!(
        effective_permissions(&bindings, Some(Test)),
        set(&[SystemRead, ServiceRead, VmRead, VmCreate, VmOperate])
    );
    assert_eq!(
        effective_permissions(&bindings, Some(Prod)),
        set(&[SystemRead, ServiceRead, VmRead, AuditRead])
    );
    assert_eq!(
        effective_permissions(&bindings, None),
        set(&[
            SystemRead,
            ServiceRead,
            VmRead,
            VmCreate,
            VmOperate,
            AuditRead
        ])
    );
    assert_eq!(effective_permissions(&[], None), BTreeSet::new());
}

#[test]
fn effective_permissions_expand_platform_admin_only_in_its_environments() {
    let bindings = vec![
        global(BuiltinRole::PlatformAdmin, TEST_ONLY),
        global(BuiltinRole::Viewer, BOTH),
    ];
    let all: BTreeSet<Permission> = Permission::ALL.into_iter().collect();
    assert_eq!(effective_permissions(&bindings, Some(Test)), all);
    assert_eq!(effective_permissions(&bindings, None), all);
    assert_eq!(
        effective_permissions(&bindings, Some(Prod)),
        [SystemRead, ServiceRead, VmRead].into_iter().collect()
    );
}

#[test]
fn nobody_decides_their_own_ticket() {
    assert_eq!(can_decide("alice", "bob"), Ok(()));
    assert_eq!(can_decide("alice", "Alice"), Ok(()));
    assert_eq!(
        can_decide("alice", "alice"),
        Err(SelfApproval {
            user: "alice".into()
        })
    );
    let sa = "system:serviceaccount:ci:deployer";
    assert_eq!(can_decide(sa, sa), Err(SelfApproval { user: sa.into() }));
    assert_eq!(
        can_decide("alice", "alice").unwrap_err().to_string(),
        "\"alice\" requested this ticket and cannot decide it (separation of duties)"
    );
}

#[test]
fn each_operation_needs_its_vm_permission() {
    use crate::domain::ticket::Operation;
    for op in Operation::ALL {
        let expected = match op {
            Operation::Create | Operation::Clone => Permission::VmCreate,
            Operation::Delete => Permission::VmDelete,
            _ => Permission::VmOperate,
        };
        assert_eq!(Permission::for_operation(op), expected, "{op:?}");
    }
}

fn grant(
    granter: &[Binding],
    role: BuiltinRole,
    scope: Scope,
    envs: &[Environment],
) -> Result<(), GrantRefusal> {
    may_grant(
        granter,
        &Grant {
            permissions: role.permissions(),
            scope: &scope,
            environments: envs,
        },
    )
}

#[test]
fn a_test_only_system_admin_cannot_grant_itself_platform_admin() {
    // The escalation of the issue: system-admin, global, test only.
    let granter = [global(BuiltinRole::SystemAdmin, TEST_ONLY)];
    assert_eq!(
        grant(&granter, BuiltinRole::PlatformAdmin, Scope::Global, BOTH),
        Err(GrantRefusal::NotHeld {
            permission: PlatformAdmin,
            scope: Scope::Global,
            environment: Test
        })
    );
    assert_eq!(
        grant(&granter, BuiltinRole::Viewer, Scope::Global, PROD_ONLY),
        Err(GrantRefusal::NotManager {
            scope: Scope::Global,
            environment: Prod
        })
    );
    // What it holds, where it holds it, it may grant.
    assert_eq!(
        grant(&granter, BuiltinRole::Operator, Scope::Global, TEST_ONLY),
        Ok(())
    );
    assert_eq!(
        grant(&granter, BuiltinRole::SystemAdmin, scope_shop(), TEST_ONLY),
        Ok(())
    );
    // Approving is not among a system-admin's permissions.
    assert_eq!(
        grant(&granter, BuiltinRole::Approver, Scope::Global, TEST_ONLY),
        Err(GrantRefusal::NotHeld {
            permission: ApprovalApprove,
            scope: Scope::Global,
            environment: Test
        })
    );
}

fn scope_shop() -> Scope {
    Scope::System("shop".into())
}

#[test]
fn a_scoped_system_admin_manages_bindings_of_its_system_only() {
    let granter = [on("shop", BuiltinRole::SystemAdmin, BOTH)];
    assert_eq!(
        grant(&granter, BuiltinRole::Operator, scope_shop(), BOTH),
        Ok(())
    );
    for scope in [Scope::Global, Scope::System("billing".into())] {
        assert_eq!(
            grant(&granter, BuiltinRole::Viewer, scope.clone(), TEST_ONLY),
            Err(GrantRefusal::NotManager {
                scope,
                environment: Test
            })
        );
    }
}

#[test]
fn only_a_platform_admin_grants_platform_admin_and_only_where_it_counts() {
    let admin = [global(BuiltinRole::PlatformAdmin, BOTH)];
    for role in BuiltinRole::ALL {
        assert_eq!(grant(&admin, role, Scope::Global, BOTH), Ok(()), "{role}");
        assert_eq!(grant(&admin, role, scope_shop(), BOTH), Ok(()), "{role}");
    }
    let test_admin = [global(BuiltinRole::PlatformAdmin, TEST_ONLY)];
    assert!(grant(&test_admin, BuiltinRole::Viewer, Scope::Global, BOTH).is_err());
    // Permissions gathered from several bindings in the scope count together.
    let split = [
        custom(&[RbacManage, VmRead], Scope::Global, BOTH),
        custom(&[SystemRead, ServiceRead], scope_shop(), BOTH),
    ];
    assert_eq!(
        grant(&split, BuiltinRole::Viewer, scope_shop(), BOTH),
        Ok(())
    );
    assert!(grant(&split, BuiltinRole::Viewer, Scope::Global, BOTH).is_err());
}

#[test]
fn scopes_include_only_themselves_or_everything() {
    assert!(Scope::Global.includes(&scope_shop()));
    assert!(Scope::Global.includes(&Scope::Global));
    assert!(scope_shop().includes(&scope_shop()));
    assert!(!scope_shop().includes(&Scope::Global));
    assert!(!scope_shop().includes(&Scope::System("billing".into())));
}
