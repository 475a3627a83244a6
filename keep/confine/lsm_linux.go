package confine

import (
	"fmt"
	"os"
	"strings"
)

// lsm says which label-based security modules the host enforces.
type lsm struct {
	apparmor, selinux bool
}

// hostLSM is the host's, as runc finds them: AppArmor when its module is
// enabled and securityfs shows it, SELinux when selinuxfs is mounted.
func hostLSM() lsm {
	var l lsm
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.HasPrefix(string(b), "Y") {
		if _, err := os.Stat("/sys/kernel/security/apparmor"); err == nil {
			l.apparmor = true
		}
	}
	if _, err := os.Stat("/sys/fs/selinux/enforce"); err == nil {
		l.selinux = true
	}
	return l
}

// checkLSM refuses the labels a Keep cannot apply on a host whose module
// enforces them. runc applies an AppArmor profile and an SELinux label as
// it executes the container's process; a Keep executes nothing, and both
// are attributes of each thread that only the thread itself may change. On
// a host without the module, runc ignores them, and so does the Keep.
func (s *Spec) checkLSM(host lsm) error {
	if host.apparmor && s.AppArmorProfile != "" && s.AppArmorProfile != "unconfined" {
		return fmt.Errorf("confinement: process.apparmorProfile %q: a Keep cannot apply AppArmor profiles yet, and this host enforces them: run the container unconfined (docker run --security-opt apparmor=unconfined, Kubernetes appArmorProfile type Unconfined)", s.AppArmorProfile)
	}
	if host.selinux && (s.SELinuxLabel != "" || s.MountLabel != "") {
		return fmt.Errorf("confinement: SELinux label %q (mount label %q): a Keep cannot apply SELinux labels yet, and this host enforces them: run the container without a label (docker run --security-opt label=disable, Kubernetes seLinuxOptions unset)", s.SELinuxLabel, s.MountLabel)
	}
	return nil
}
