package dev.sluice.compat;

import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FeatureUpdate;
import org.apache.kafka.clients.admin.UpdateFeaturesOptions;

/** Feature versions through the Java admin client: DescribeFeatures (ApiVersions) and UpdateFeatures. */
final class Features {
    private Features() {}

    static Admin admin(Main.Args args) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 20000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        return Admin.create(p);
    }

    /** {@code features --bootstrap B}: supported and finalized levels and the epoch. */
    static Json describe(Main.Args args) throws Exception {
        try (Admin admin = admin(args)) {
            FeatureMetadata m = admin.describeFeatures().featureMetadata().get();
            Map<String, Object> finalized = new TreeMap<>();
            m.finalizedFeatures().forEach((k, v) -> finalized.put(k, Json.array(java.util.List.of(v.minVersionLevel(), v.maxVersionLevel()))));
            Map<String, Object> supported = new TreeMap<>();
            m.supportedFeatures().forEach((k, v) -> supported.put(k, Json.array(java.util.List.of(v.minVersion(), v.maxVersion()))));
            return Json.object()
                .put("finalized", finalized)
                .put("supported", supported)
                .put("epoch", m.finalizedFeaturesEpoch().orElse(-1L));
        }
    }

    /**
     * {@code update-feature --bootstrap B --feature F --level L [--type upgrade|safe|unsafe] [--validate-only true]}:
     * reports {@code {"error": null}} or the exception's class and message.
     */
    static Json update(Main.Args args) throws Exception {
        FeatureUpdate.UpgradeType type = switch (args.get("type", "upgrade")) {
            case "upgrade" -> FeatureUpdate.UpgradeType.UPGRADE;
            case "safe" -> FeatureUpdate.UpgradeType.SAFE_DOWNGRADE;
            case "unsafe" -> FeatureUpdate.UpgradeType.UNSAFE_DOWNGRADE;
            default -> throw new IllegalArgumentException("--type upgrade|safe|unsafe");
        };
        short level = Short.parseShort(args.get("level"));
        try (Admin admin = admin(args)) {
            UpdateFeaturesOptions options = new UpdateFeaturesOptions()
                .validateOnly(Boolean.parseBoolean(args.get("validate-only", "false")));
            try {
                admin.updateFeatures(Map.of(args.get("feature"), new FeatureUpdate(level, type)), options).all().get();
                return Json.object().put("error", null);
            } catch (ExecutionException e) {
                return Json.object()
                    .put("error", e.getCause().getClass().getSimpleName())
                    .put("message", e.getCause().getMessage());
            }
        }
    }
}
