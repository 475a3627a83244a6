//go:build linux

package hostwasi

import (
	"errors"

	"golang.org/x/sys/unix"
)

// errno is a WASI preview 1 error number.
type errno int32

// The WASI errnos this package returns (wasi_snapshot_preview1 witx).
const (
	eSuccess     errno = 0
	eAcces       errno = 2
	eAgain       errno = 6
	eBadf        errno = 8
	eConnReset   errno = 15
	eExist       errno = 20
	eFault       errno = 21
	eInval       errno = 28
	eIntr        errno = 27
	eIO          errno = 29
	eIsDir       errno = 31
	eLoop        errno = 32
	eNameTooLong errno = 37
	eNoent       errno = 44
	eNospc       errno = 51
	eNosys       errno = 52
	eNotDir      errno = 54
	eNotEmpty    errno = 55
	eNotSup      errno = 58
	ePerm        errno = 63
	ePipe        errno = 64
	eRofs        errno = 69
	eSpipe       errno = 70
	eXdev        errno = 75
	eNotCapable  errno = 76
	eNotSock     errno = 57
	eMlink       errno = 34
	eNxio        errno = 60
	eBusy        errno = 10
	eTxtbsy      errno = 74
	eNomem       errno = 48
	eFbig        errno = 22
	eDquot       errno = 19
	eOverflow    errno = 61
)

var hostErrnos = map[unix.Errno]errno{
	unix.EACCES: eAcces, unix.EAGAIN: eAgain, unix.EBADF: eBadf,
	unix.ECONNRESET: eConnReset, unix.EEXIST: eExist, unix.EFAULT: eFault,
	unix.EINVAL: eInval, unix.EIO: eIO, unix.EISDIR: eIsDir, unix.ELOOP: eLoop,
	unix.ENAMETOOLONG: eNameTooLong, unix.ENOENT: eNoent, unix.ENOSPC: eNospc,
	unix.ENOSYS: eNosys, unix.ENOTDIR: eNotDir, unix.ENOTEMPTY: eNotEmpty,
	unix.EOPNOTSUPP: eNotSup, unix.EPERM: ePerm, unix.EPIPE: ePipe,
	unix.EROFS: eRofs, unix.ESPIPE: eSpipe, unix.EXDEV: eXdev,
	unix.ENOTSOCK: eNotSock, unix.EMLINK: eMlink, unix.ENXIO: eNxio, unix.EBUSY: eBusy,
	unix.ETXTBSY: eTxtbsy, unix.ENOMEM: eNomem, unix.EFBIG: eFbig, unix.EDQUOT: eDquot,
	unix.EOVERFLOW: eOverflow, unix.EINTR: eIntr,
}

// errnoOf maps a host error to WASI; EXDEV from openat2 (a path that
// leaves its directory) becomes ENOTCAPABLE, the WASI answer for it.
func errnoOf(err error) errno {
	if err == nil {
		return eSuccess
	}
	var e unix.Errno
	if !errors.As(err, &e) {
		return eIO
	}
	if w, ok := hostErrnos[e]; ok {
		return w
	}
	return eIO
}
