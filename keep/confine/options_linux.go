package confine

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// options are a spec mount's options, as mount(2) and mount_setattr(2)
// take them.
type options struct {
	flags       uintptr
	propagation uintptr
	attr        unix.MountAttr
	data        string
}

// mountFlags are the options that set (or, with clear, unset) a flag of
// mount(2), as runc reads them.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"async": {true, unix.MS_SYNCHRONOUS}, "atime": {true, unix.MS_NOATIME}, "bind": {false, unix.MS_BIND},
	"defaults": {false, 0}, "dev": {true, unix.MS_NODEV}, "diratime": {true, unix.MS_NODIRATIME},
	"dirsync": {false, unix.MS_DIRSYNC}, "exec": {true, unix.MS_NOEXEC}, "iversion": {false, unix.MS_I_VERSION},
	"lazytime": {false, unix.MS_LAZYTIME}, "loud": {true, unix.MS_SILENT}, "mand": {false, unix.MS_MANDLOCK},
	"noatime": {false, unix.MS_NOATIME}, "nodev": {false, unix.MS_NODEV}, "nodiratime": {false, unix.MS_NODIRATIME},
	"noexec": {false, unix.MS_NOEXEC}, "noiversion": {true, unix.MS_I_VERSION}, "nolazytime": {true, unix.MS_LAZYTIME},
	"nomand": {true, unix.MS_MANDLOCK}, "norelatime": {true, unix.MS_RELATIME}, "nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid": {false, unix.MS_NOSUID}, "rbind": {false, unix.MS_BIND | unix.MS_REC}, "relatime": {false, unix.MS_RELATIME},
	"remount": {false, unix.MS_REMOUNT}, "ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"silent": {false, unix.MS_SILENT}, "strictatime": {false, unix.MS_STRICTATIME}, "suid": {true, unix.MS_NOSUID},
	"sync": {false, unix.MS_SYNCHRONOUS},
}

// propagationOptions are the propagation options of a mount.
var propagationOptions = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// recursiveOptions are the options runc applies to a mount and everything
// below it with mount_setattr(2): "rro" is a read-only mount whose
// submounts are read-only too.
var recursiveOptions = map[string]struct {
	clear bool
	attr  uint64
}{
	"rro": {false, unix.MOUNT_ATTR_RDONLY}, "rrw": {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid": {false, unix.MOUNT_ATTR_NOSUID}, "rsuid": {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev": {false, unix.MOUNT_ATTR_NODEV}, "rdev": {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec": {false, unix.MOUNT_ATTR_NOEXEC}, "rexec": {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime": {false, unix.MOUNT_ATTR_NODIRATIME}, "rdiratime": {true, unix.MOUNT_ATTR_NODIRATIME},
	"rnosymfollow": {false, unix.MOUNT_ATTR_NOSYMFOLLOW}, "rsymfollow": {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// bind reports whether a mount of type typ with these options is a bind
// mount.
func (o options) bind(typ string) bool { return typ == "bind" || o.flags&unix.MS_BIND != 0 }

// parseOptions reads a spec mount's options; what is no flag is the
// file system's data, as for mount(8).
func parseOptions(opts []string) (options, error) {
	var o options
	var data []string
	for _, opt := range opts {
		if f, ok := mountFlags[opt]; ok {
			if f.clear {
				o.flags &^= f.flag
			} else {
				o.flags |= f.flag
			}
			continue
		}
		if p, ok := propagationOptions[opt]; ok {
			o.propagation = p
			continue
		}
		if r, ok := recursiveOptions[opt]; ok {
			if r.clear {
				o.attr.Attr_clr |= r.attr
				o.attr.Attr_set &^= r.attr
			} else {
				o.attr.Attr_set |= r.attr
				o.attr.Attr_clr &^= r.attr
			}
			continue
		}
		switch opt {
		case "tmpcopyup", "idmap", "ridmap":
			return options{}, fmt.Errorf("mount option %q is not supported by the enarx runtime: remove it", opt)
		}
		data = append(data, opt)
	}
	o.data = strings.Join(data, ",")
	return o, nil
}

// propagationFlags is the mount(2) flag of linux.rootfsPropagation p, def
// when p is empty.
func propagationFlags(p string, def uintptr) uintptr {
	if f, ok := propagationOptions[p]; ok {
		return f
	}
	return def
}
