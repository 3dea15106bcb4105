package org.qemuft.nativeio.nfs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.qemuft.nativeio.nfs.Nfs3Layouts.offset;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The FFM layouts in {@link Nfs3Layouts} against the C compiler's view of the installed libnfs
 * 4.0 headers: compiles src/test/c/nfs3_layout_probe.c (needs gcc and Debian's libnfs-dev, both in
 * scripts/setup's package list) and compares every offset, size and constant.
 */
class Nfs3LayoutsTest {

  @Test
  void javaLayoutsMatchTheInstalledLibnfsHeaders() throws Exception {
    Map<String, Long> c = probe();
    Map<String, Long> java = new LinkedHashMap<>();
    java.put("sizeof.CREATE3args", Nfs3Layouts.CREATE3ARGS.byteSize());
    java.put("CREATE3args.where.dir.data.data_len", Nfs3Layouts.ARGS_DIR_LEN);
    java.put("CREATE3args.where.dir.data.data_val", Nfs3Layouts.ARGS_DIR_VAL);
    java.put("CREATE3args.where.name", Nfs3Layouts.ARGS_NAME);
    java.put("CREATE3args.how.mode", Nfs3Layouts.ARGS_MODE);
    java.put("CREATE3args.how.createhow3_u.verf", Nfs3Layouts.ARGS_VERF);
    java.put("CREATE3args.how.createhow3_u.obj_attributes.mode.set_it",
        offset(Nfs3Layouts.CREATE3ARGS, "how", "createhow3_u", "obj_attributes", "mode", "set_it"));
    java.put("sizeof.createverf3", (long) Nfs3Layouts.CREATEVERF_SIZE);
    java.put("sizeof.sattr3", Nfs3Layouts.SATTR3.byteSize());
    java.put("sattr3.size.size", offset(Nfs3Layouts.SATTR3, "size", "size"));
    java.put("sattr3.atime", offset(Nfs3Layouts.SATTR3, "atime"));
    java.put("sattr3.mtime", offset(Nfs3Layouts.SATTR3, "mtime"));
    java.put("sizeof.CREATE3res", Nfs3Layouts.CREATE3RES.byteSize());
    java.put("CREATE3res.status", Nfs3Layouts.RES_STATUS);
    java.put("CREATE3res.CREATE3res_u.resok.obj_attributes",
        offset(Nfs3Layouts.CREATE3RES, "CREATE3res_u", "resok", "obj_attributes"));
    java.put("CREATE3res.CREATE3res_u.resok.dir_wcc",
        offset(Nfs3Layouts.CREATE3RES, "CREATE3res_u", "resok", "dir_wcc"));
    java.put("enum.EXCLUSIVE", (long) Nfs3Layouts.EXCLUSIVE);
    java.put("enum.NFS3_OK", (long) Nfs3Layouts.NFS3_OK);
    java.put("enum.NFS3ERR_DQUOT", (long) Nfs3Layouts.NFS3ERR_DQUOT);
    java.put("enum.NFS3ERR_NOTSUPP", (long) Nfs3Layouts.NFS3ERR_NOTSUPP);
    java.put("enum.RPC_STATUS_SUCCESS", (long) Nfs3Layouts.RPC_STATUS_SUCCESS);
    java.put("enum.RPC_STATUS_ERROR", (long) Nfs3Layouts.RPC_STATUS_ERROR);
    java.put("enum.RPC_STATUS_CANCEL", (long) Nfs3Layouts.RPC_STATUS_CANCEL);
    java.put("enum.RPC_STATUS_TIMEOUT", (long) Nfs3Layouts.RPC_STATUS_TIMEOUT);
    java.put("sizeof.nfs_stat_64", Nfs3Layouts.NFS_STAT_64.byteSize());
    for (String f : new String[] {"nfs_ino", "nfs_mode", "nfs_nlink", "nfs_size", "nfs_atime", "nfs_mtime",
        "nfs_atime_nsec", "nfs_mtime_nsec"}) {
      java.put("nfs_stat_64." + f, offset(Nfs3Layouts.NFS_STAT_64, f));
    }
    java.put("sizeof.pollfd", Nfs3Layouts.POLLFD.byteSize());
    java.put("pollfd.fd", Nfs3Layouts.POLL_FD);
    java.put("pollfd.events", Nfs3Layouts.POLL_EVENTS);
    java.put("pollfd.revents", Nfs3Layouts.POLL_REVENTS);
    java.put("enum.POLLIN", (long) NfsClient.POLLIN);
    java.put("enum.POLLOUT", (long) NfsClient.POLLOUT);

    assertThat(new TreeMap<>(java)).isEqualTo(new TreeMap<>(c));
  }

  /** Compiles and runs the probe; its output as name -> value. */
  private static Map<String, Long> probe() throws IOException, InterruptedException {
    Path src = Path.of("src/test/c/nfs3_layout_probe.c").toAbsolutePath();
    assertThat(src).as("the layout probe's source").exists();
    Path header = Path.of("/usr/include/nfsc/libnfs-raw-nfs.h");
    assertThat(header).as("libnfs's raw NFSv3 header: install Debian's libnfs-dev (scripts/setup does)")
        .exists();
    Path dir = Files.createDirectories(Path.of("target", "nfs3-layout-probe").toAbsolutePath());
    Path exe = dir.resolve("nfs3_layout_probe");
    String compiled = run(dir, "gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o", exe.toString(), src.toString());
    assertThat(Files.isExecutable(exe)).as("gcc output: %s", compiled).isTrue();
    Map<String, Long> out = new LinkedHashMap<>();
    for (String line : run(dir, exe.toString()).lines().toList()) {
      String[] f = line.trim().split(" ");
      out.put(f[0], Long.parseLong(f[1]));
    }
    return out;
  }

  private static String run(Path dir, String... cmd) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("%s finished", String.join(" ", cmd)).isTrue();
    assertThat(p.exitValue()).as("%s: %s", String.join(" ", cmd), out).isZero();
    return out;
  }
}
