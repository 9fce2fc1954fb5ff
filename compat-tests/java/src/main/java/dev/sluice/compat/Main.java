package dev.sluice.compat;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Entry point: {@code java -cp <classes:deps> dev.sluice.compat.Main <command> --key value ...}.
 *
 * <p>Each command is one scenario a real Java client runs against a broker; it prints one JSON
 * object on stdout (what the pytest side asserts on) and exits 0, or prints the error and exits
 * 1. New scenarios (admin, CLI tools, Streams, Connect) register here.
 */
public final class Main {
    /** A scenario: reads its options, talks to the broker, returns the JSON it reports. */
    public interface Command {
        Json run(Args args) throws Exception;
    }

    static final Map<String, Command> COMMANDS = new TreeMap<>();

    static {
        COMMANDS.put("features", Features::describe);
        COMMANDS.put("update-feature", Features::update);
        COMMANDS.put("txn-produce", Transactions::produce);
        COMMANDS.put("read-committed", Transactions::readCommitted);
        COMMANDS.put("consume-transform-produce", Transactions::consumeTransformProduce);
    }

    private Main() {}

    public static void main(String[] argv) {
        if (argv.length == 0 || !COMMANDS.containsKey(argv[0])) {
            System.err.println("usage: Main <command> [--key value]...; commands: " + COMMANDS.keySet());
            System.exit(2);
        }
        try {
            Json out = COMMANDS.get(argv[0]).run(Args.parse(argv, 1));
            System.out.println(out);
            System.out.flush();
            System.exit(0);
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(1);
        }
    }

    /** {@code --key value} options. */
    public static final class Args {
        private final Map<String, String> values = new LinkedHashMap<>();

        static Args parse(String[] argv, int from) {
            Args a = new Args();
            for (int i = from; i < argv.length; i += 2) {
                if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                    throw new IllegalArgumentException("expected --key value at " + argv[i]);
                }
                a.values.put(argv[i].substring(2), argv[i + 1]);
            }
            return a;
        }

        public String get(String key) {
            String v = values.get(key);
            if (v == null) {
                throw new IllegalArgumentException("missing --" + key);
            }
            return v;
        }

        public String get(String key, String dflt) {
            return values.getOrDefault(key, dflt);
        }

        public int getInt(String key, int dflt) {
            return values.containsKey(key) ? Integer.parseInt(values.get(key)) : dflt;
        }
    }
}
