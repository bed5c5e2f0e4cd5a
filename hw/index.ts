export { loadProfile, listProfiles, memoryBytes, storageBytes, ProfileSchema, type Profile } from './profile.js';
export { agentLimits, capacityEstimate, type AgentLimits, type Workload, type CapacityEstimate } from './limits.js';
export { loadYamlFile, parseYaml } from './yaml-file.js';
