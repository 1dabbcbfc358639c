"""Pure transforms: frames and scalars in, frames out. No network, disk, env or clock."""
