import type { ProfileInput } from './schema.js';

/** A valid profile to start from: every seed field present, with placeholders that are safe to keep. */
export function skeletonProfile(id: string): ProfileInput {
  return {
    $schema: './schema/persona-profile.schema.json',
    id,
    description: `What ${id} does, who owns it, and where its runbook lives.`,
    required_cores: 1,
    required_ram_gb: 1,
    required_storage_gb: 1,
    software_stack: [],
    network_configuration: { ip_ranges: [], vlans: [], firewall_rules: [] },
    security_profile: { users: [], groups: [], encryption_keys: [] },
    application_dependencies: [],
    performance_metrics: {
      cpu_utilization_pct: { max: 80 },
      memory_usage_pct: { max: 85 },
      window_seconds: 10,
      monitor_seconds: 30,
    },
    data: { paths: [`/srv/${id}`], migration: 'rsync' },
    deploy: {
      port: 8080,
      files: [],
      install: [],
      start: ['systemctl', 'start', id],
      stop: ['systemctl', 'stop', id],
      status: ['systemctl', 'is-active', '--quiet', id],
    },
    health_checks: [{ type: 'tcp', port: 8080 }],
    traffic: { method: 'none' },
  };
}
