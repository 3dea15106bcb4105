package org.qemuft.qmp;

/**
 * One block backend ({@code query-block}), reduced to what qemu-ft needs.
 *
 * @param device the drive's id ({@code -drive id=...}); empty for a backend made with -blockdev
 * @param qdev the guest device it is attached to (e.g. {@code /machine/peripheral-anon/device[0]/virtio-backend});
 *     null when attached to none
 * @param nodeName the node name of its top image, which snapshot-save/-load/-delete take (QEMU
 *     generates one, e.g. {@code #block123}, when the command line names none); null without a medium
 * @param file the image's file name (or URL); null without a medium
 * @param driver the top image's format driver, e.g. {@code qcow2}, {@code blkreplay}; null without a medium
 * @param readOnly whether the medium is read-only
 */
public record BlockInfo(String device, String qdev, String nodeName, String file, String driver, boolean readOnly) {}
