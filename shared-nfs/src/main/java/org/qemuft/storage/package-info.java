/**
 * qemu-ft's shared storage (design step 7): {@link org.qemuft.storage.SharedStorage} (a mounted
 * directory or {@code nfs://} through libnfs), the go-live test-and-set {@link
 * org.qemuft.storage.GoLiveLock}, disk images and overlays ({@link org.qemuft.storage.Images}),
 * and {@link org.qemuft.storage.NbdExport} for disks QEMU must reach under record/replay. How and
 * why it works: docs/shared-storage.md.
 */
package org.qemuft.storage;
