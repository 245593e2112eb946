// Kernel-facing layer; see the LinuxNetworking helper.
import CLinuxSupport
