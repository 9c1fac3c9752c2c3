//! Systems and Services: registration from their Kubernetes objects and guarded deletion
//! (docs/reference.md#kinds, docs/architecture.md#identity-and-permissions,
//! docs/architecture.md#decisions). Registration is keyed by the object's uid, so a re-delivered
//! event or a restarted controller finds the row it wrote and writes nothing more.

use super::AppError;
use super::access::{Caller, Check, SystemRef, authorize};
use crate::db;
use crate::db::audit::AuditEntry;
use crate::domain::names::{NameKind, validate_name};
use crate::domain::permissions::{Permission, ResourceRole};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

/// A registration result: the row, and whether this call created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered<T> {
    pub value: T,
    pub created: bool,
}

fn invalid_name(field: &str, err: impl std::fmt::Display) -> AppError {
    AppError::Invalid {
        field: field.into(),
        rule: err.to_string(),
    }
}

/// Any authenticated user may create a System and becomes its owner.
pub async fn register_system(
    pool: &PgPool,
    caller: &Caller,
    name: &str,
    description: &str,
    k8s_uid: &str,
) -> Result<Registered<SystemRef>, AppError> {
    validate_name(NameKind::System, name).map_err(|e| invalid_name("metadata.name", e))?;
    let mut tx = pool.begin().await?;
    if let Some((row, deleted)) = db::services::system_by_object(&mut tx, k8s_uid).await? {
        if deleted {
            return Err(AppError::Conflict(format!(
                "system {name:?} was deleted; create a new object"
            )));
        }
        return Ok(Registered {
            value: SystemRef {
                id: row.id,
                name: row.name,
            },
            created: false,
        });
    }
    if db::services::live_system_by_name(&mut tx, name)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(format!(
            "system {name:?} already exists"
        )));
    }
    let id = db::services::insert_system_for_object(
        &mut tx,
        name,
        description,
        &caller.username,
        k8s_uid,
    )
    .await?
    .ok_or_else(|| {
        AppError::Conflict(format!("system {name:?} is being registered concurrently"))
    })?;
    let owner = caller.subject();
    db::rbac::grant_system_role(
        &mut tx,
        id,
        &owner,
        ResourceRole::Owner.as_str(),
        &caller.username,
    )
    .await?;
    db::rbac::touch_subject(&mut tx, &owner).await?;
    db::audit::append(
        &mut tx,
        &AuditEntry::new("system.create", &caller.username, "system", id, name).details(
            json!({"description": description, "owner": caller.username, "k8s_uid": k8s_uid}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Registered {
        value: SystemRef {
            id,
            name: name.to_string(),
        },
        created: true,
    })
}

async fn live_system(conn: &mut PgConnection, name: &str) -> Result<SystemRef, AppError> {
    db::services::live_system_by_name(conn, name)
        .await?
        .map(|r| SystemRef {
            id: r.id,
            name: r.name,
        })
        .ok_or_else(|| AppError::NotFound {
            what: "system",
            id: name.to_string(),
        })
}

/// Whether `caller` may delete the System now: permission, and no live Services.
pub async fn check_system_deletion(
    conn: &mut PgConnection,
    caller: &Caller,
    name: &str,
) -> Result<(), AppError> {
    let system = live_system(conn, name).await?;
    authorize(
        conn,
        caller,
        &Check {
            permission: Permission::SystemDelete,
            action: "delete systems",
            system: Some(&system),
            environment: None,
        },
    )
    .await?;
    deletion_guard_system(conn, &system).await
}

async fn deletion_guard_system(
    conn: &mut PgConnection,
    system: &SystemRef,
) -> Result<(), AppError> {
    let services = db::services::live_service_count(conn, system.id).await?;
    if services > 0 {
        return Err(AppError::Conflict(format!(
            "system {:?} still has {services} live service(s); delete them first",
            system.name
        )));
    }
    Ok(())
}

/// Soft-deletes the System mirrored from the object `k8s_uid` once it has no live Services.
/// Authorisation happened at admission (only the API server knows who deletes); the guard is
/// checked again here because children may have appeared since. Nothing mirrored: nothing to do.
pub async fn remove_system(pool: &PgPool, actor: &str, k8s_uid: &str) -> Result<(), AppError> {
    let mut tx = pool.begin().await?;
    let Some((row, deleted)) = db::services::system_by_object(&mut tx, k8s_uid).await? else {
        return Ok(());
    };
    if deleted {
        return Ok(());
    }
    let system = SystemRef {
        id: row.id,
        name: row.name,
    };
    deletion_guard_system(&mut tx, &system).await?;
    db::services::soft_delete_system(&mut tx, system.id).await?;
    db::audit::append(
        &mut tx,
        &AuditEntry::new("system.delete", actor, "system", system.id, &system.name),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The service part of a Service object's name `<system>.<service>`.
pub fn split_service_name(object_name: &str) -> Result<(&str, &str), AppError> {
    object_name
        .split_once('.')
        .filter(|(system, service)| !system.is_empty() && !service.contains('.'))
        .ok_or_else(|| AppError::Invalid {
            field: "metadata.name".into(),
            rule: format!("{object_name:?} must be <system>.<service>"),
        })
}

/// Checks a Service registration without writing: names, the System, the caller's right.
pub async fn check_service_creation(
    conn: &mut PgConnection,
    caller: &Caller,
    system_name: &str,
    service_name: &str,
) -> Result<SystemRef, AppError> {
    validate_name(NameKind::Service, service_name).map_err(|e| invalid_name("metadata.name", e))?;
    let system = live_system(conn, system_name).await?;
    authorize(
        conn,
        caller,
        &Check {
            permission: Permission::ServiceCreate,
            action: "create services",
            system: Some(&system),
            environment: None,
        },
    )
    .await?;
    Ok(system)
}

pub async fn register_service(
    pool: &PgPool,
    caller: &Caller,
    system_name: &str,
    service_name: &str,
    description: &str,
    k8s_uid: &str,
) -> Result<Registered<db::services::ServiceRow>, AppError> {
    let mut tx = pool.begin().await?;
    if let Some((row, deleted)) = db::services::service_by_object(&mut tx, k8s_uid).await? {
        if deleted {
            return Err(AppError::Conflict(format!(
                "service {service_name:?} was deleted; create a new object"
            )));
        }
        return Ok(Registered {
            value: row,
            created: false,
        });
    }
    let system = check_service_creation(&mut tx, caller, system_name, service_name).await?;
    if db::services::live_service(&mut tx, system.id, service_name)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(format!(
            "service {service_name:?} already exists in system {system_name:?}"
        )));
    }
    let id = db::services::insert_service_for_object(
        &mut tx,
        system.id,
        service_name,
        description,
        &caller.username,
        k8s_uid,
    )
    .await?
    .ok_or_else(|| {
        AppError::Conflict(format!(
            "service {service_name:?} is being registered concurrently"
        ))
    })?;
    db::rbac::touch_subject(&mut tx, &caller.subject()).await?;
    db::audit::append(
        &mut tx,
        &AuditEntry::new(
            "service.create",
            &caller.username,
            "service",
            id,
            service_name,
        )
        .parent("system", system.id)
        .details(json!({"system": system_name, "description": description, "k8s_uid": k8s_uid})),
    )
    .await?;
    tx.commit().await?;
    let row = db::services::ServiceRow {
        id,
        system_id: system.id,
        name: service_name.into(),
        k8s_uid: Some(k8s_uid.into()),
    };
    Ok(Registered {
        value: row,
        created: true,
    })
}

/// Whether `caller` may delete the Service now: permission on its System, no live VMs.
pub async fn check_service_deletion(
    conn: &mut PgConnection,
    caller: &Caller,
    system_name: &str,
    service_name: &str,
) -> Result<(), AppError> {
    let system = live_system(conn, system_name).await?;
    authorize(
        conn,
        caller,
        &Check {
            permission: Permission::ServiceDelete,
            action: "delete services",
            system: Some(&system),
            environment: None,
        },
    )
    .await?;
    let Some(service) = db::services::live_service(conn, system.id, service_name).await? else {
        return Ok(());
    };
    deletion_guard_service(conn, &service).await
}

async fn deletion_guard_service(
    conn: &mut PgConnection,
    service: &db::services::ServiceRow,
) -> Result<(), AppError> {
    let vms = db::services::live_vm_count(conn, service.id).await?;
    if vms > 0 {
        return Err(AppError::Conflict(format!(
            "service {:?} still has {vms} live VM(s); delete them with approved VmOperations first",
            service.name
        )));
    }
    Ok(())
}

pub async fn remove_service(pool: &PgPool, actor: &str, k8s_uid: &str) -> Result<(), AppError> {
    let mut tx = pool.begin().await?;
    let Some((service, deleted)) = db::services::service_by_object(&mut tx, k8s_uid).await? else {
        return Ok(());
    };
    if deleted {
        return Ok(());
    }
    deletion_guard_service(&mut tx, &service).await?;
    db::services::soft_delete_service(&mut tx, service.id).await?;
    db::audit::append(
        &mut tx,
        &AuditEntry::new(
            "service.delete",
            actor,
            "service",
            service.id,
            &service.name,
        )
        .parent("system", service.system_id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
