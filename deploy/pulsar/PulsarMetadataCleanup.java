// Conclave: remove stale "ephemeral" entries from the standalone broker's
// RocksDB metadata store before the broker starts.
//
// Why: RocksDB has no sessions, so Pulsar's RocksdbMetadataStore marks each
// ephemeral node with the id of the store instance that wrote it and only drops
// nodes of older instances lazily, when they are read. After the broker was
// killed (SIGKILL, OOM, machine stop) the bookie registration
// /ledgers/available/127.0.0.1:<port> of the dead process is still there; on the
// next start the bookie's lock on that path and the lazy deletion invalidate each
// other in a tight loop (100% CPU, log growing by megabytes per second, seen with
// Pulsar 4.0.7). Reading the whole tree once, with the broker stopped, makes the
// store drop every such node first.
//
// Usage (pulsar.sh does this on every start, broker stopped):
//   java -cp "<pulsar lib>/*:<classes>" PulsarMetadataCleanup <metadata dir>
import java.io.File;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pulsar.metadata.api.MetadataStoreConfig;
import org.apache.pulsar.metadata.api.NotificationType;
import org.apache.pulsar.metadata.api.extended.MetadataStoreExtended;

public class PulsarMetadataCleanup {
    private static final int MAX_DEPTH = 32;

    private final MetadataStoreExtended store;
    private int visited;

    private PulsarMetadataCleanup(MetadataStoreExtended store) {
        this.store = store;
    }

    private void walk(String path, int depth) throws Exception {
        visited++;
        // getChildren reads each child's record and deletes those that are
        // ephemeral and owned by an earlier store instance.
        List<String> children = store.getChildren(path).get(30, TimeUnit.SECONDS);
        if (depth >= MAX_DEPTH) {
            return;
        }
        for (String child : children) {
            walk(path.equals("/") ? "/" + child : path + "/" + child, depth + 1);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: PulsarMetadataCleanup <metadata dir>");
            System.exit(2);
        }
        File dir = new File(args[0]).getAbsoluteFile();
        if (!new File(dir, "CURRENT").isFile()) {
            System.out.println("metadata cleanup: no RocksDB store in " + dir + " yet; nothing to do");
            return;
        }
        MetadataStoreExtended store = MetadataStoreExtended.create("rocksdb://" + dir,
                MetadataStoreConfig.builder().metadataStoreName("conclave-metadata-cleanup").build());
        AtomicInteger deleted = new AtomicInteger();
        StringBuilder names = new StringBuilder();
        store.registerListener(n -> {
            if (n.getType() == NotificationType.Deleted) {
                deleted.incrementAndGet();
                synchronized (names) {
                    names.append("\n  removed stale ephemeral node ").append(n.getPath());
                }
            }
        });
        PulsarMetadataCleanup cleanup = new PulsarMetadataCleanup(store);
        try {
            cleanup.walk("/", 0);
        } finally {
            store.close();
        }
        synchronized (names) {
            System.out.println("metadata cleanup: scanned " + cleanup.visited + " nodes, removed "
                    + deleted.get() + " stale ephemeral node(s)" + names);
        }
    }
}
