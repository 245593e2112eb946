// natlab's protocol roles. Each runs as its own process inside a lab node (`natlab serve …`,
// `natlab probe …`), started there by the lab's RoleLauncher, so it binds its sockets in the node's
// network namespace like any third-party program would.
