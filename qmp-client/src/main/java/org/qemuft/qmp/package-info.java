/**
 * A QMP client for QEMU, with no qemu-ft specifics. Two layers:
 *
 * <ul>
 *   <li>{@link org.qemuft.qmp.QmpClient}, the core: connect to a Unix socket, execute a command
 *       (JSON in, JSON out), listen to events, close;
 *   <li>{@link org.qemuft.qmp.QemuMonitor}, typed commands on top of it (query-status, stop/cont,
 *       snapshot jobs, query-replay, ...), with records instead of JSON.
 * </ul>
 *
 * Failures are checked {@link org.qemuft.qmp.QmpException}s of three kinds: QEMU said no ({@link
 * org.qemuft.qmp.QmpErrorException}), no answer ({@link org.qemuft.qmp.QmpConnectionException}),
 * not QMP ({@link org.qemuft.qmp.QmpProtocolException}). docs/qmp.md has the details and the quirks
 * of QEMU 7.2 found on the way.
 */
package org.qemuft.qmp;
